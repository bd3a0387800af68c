package shadowclient_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	mqttc "github.com/eclipse/paho.mqtt.golang"

	"github.com/shadowsync/shadowsync/internal/faultproxy"
	"github.com/shadowsync/shadowsync/internal/mosquitto"
	"github.com/shadowsync/shadowsync/shadowclient"
	"github.com/shadowsync/shadowsync/shadowstate"
)

// TestClientLateReplyAfterTimeout runs against a hand-made shadow service on mosquitto
// that answers the first get only after the client has given up, and the second at
// once: the late reply must be dropped and must not be taken for the second's.
func TestClientLateReplyAfterTimeout(t *testing.T) {
	addr := mosquitto.Start(t)
	svc := mqttc.NewClient(mqttc.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("slow-service").SetAutoReconnect(false))
	if tok := svc.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("service connect: %v", tok.Error())
	}
	t.Cleanup(func() { svc.Disconnect(0) })

	requests := make(chan string, 4)
	if tok := svc.Subscribe("$aws/things/Slow-1/shadow/get", 1, func(_ mqttc.Client, m mqttc.Message) {
		var r shadowstate.TokenRequest
		_ = shadowstate.Unmarshal(m.Payload(), &r)
		requests <- r.ClientToken
	}); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("service subscribe: %v", tok.Error())
	}
	answer := func(token string, version int) {
		body := `{"state":{"reported":{"v":` + strconv.Itoa(version) + `}},"metadata":{},"version":` + strconv.Itoa(version) + `,"timestamp":1,"clientToken":"` + token + `"}`
		svc.Publish("$aws/things/Slow-1/shadow/get/accepted", 1, false, body).WaitTimeout(wait)
	}

	conn := dial(t, "mqtt://"+addr, nil)
	c := newClient(t, conn, shadowclient.Options{Timeout: 300 * time.Millisecond})
	h := mustShadow(t, c, "Slow-1", "")

	_, err := h.Get(t.Context())
	if !errors.Is(err, shadowclient.ErrRequestTimeout) || !strings.Contains(err.Error(), "get Slow-1") {
		t.Fatalf("unanswered get: %v", err)
	}
	first := recv(t, requests, "the service got no get request")
	answer(first, 1) // too late

	done := make(chan struct{})
	var doc *shadowstate.Document
	go func() {
		defer close(done)
		doc, err = h.Get(t.Context())
	}()
	second := recv(t, requests, "the service got no second get request")
	if second == first {
		t.Fatal("two requests carried the same clientToken")
	}
	answer(second, 2)
	recv(t, done, "the second get did not return")
	if err != nil || doc.Version != 2 {
		t.Fatalf("the get after a late reply: %+v, %v", doc, err)
	}
}

// TestClientRequestInFlightFailsWhenTheConnectionIsLost: a request sent and
// acknowledged, whose reply has not come when the connection drops, returns
// ErrReplyLost at once instead of waiting out its timeout (a minute here): the reply
// can only come over the connection that is gone.
func TestClientRequestInFlightFailsWhenTheConnectionIsLost(t *testing.T) {
	addr := mosquitto.Start(t)
	svc := mqttc.NewClient(mqttc.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("mute-service").SetAutoReconnect(false))
	if tok := svc.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("service connect: %v", tok.Error())
	}
	t.Cleanup(func() { svc.Disconnect(0) })
	requests := make(chan struct{}, 4)
	if tok := svc.Subscribe("$aws/things/Mute-1/shadow/get", 1, func(mqttc.Client, mqttc.Message) {
		requests <- struct{}{} // and never answers
	}); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("service subscribe: %v", tok.Error())
	}
	proxy, err := faultproxy.Start(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })

	conn := dial(t, "mqtt://"+proxy.Addr(), nil)
	c := newClient(t, conn, shadowclient.Options{Timeout: time.Minute})
	h := mustShadow(t, c, "Mute-1", "")
	result := make(chan error, 1)
	go func() {
		_, err := h.Get(t.Context())
		result <- err
	}()
	select {
	case <-requests: // sent, acknowledged, waiting for its reply
	case <-time.After(wait):
		t.Fatal("the get never reached the service")
	}
	proxy.Cut()
	select {
	case err := <-result:
		if !errors.Is(err, shadowclient.ErrReplyLost) {
			t.Fatalf("get whose connection was lost: %v, want ErrReplyLost", err)
		}
	case <-time.After(wait):
		t.Fatal("the get still waits for a reply after its connection was lost")
	}
}
