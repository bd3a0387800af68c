package localiot

import (
	"context"
	"fmt"
	"testing"
	"time"

	mqttc "github.com/eclipse/paho.mqtt.golang"

	"github.com/shadowsync/shadowsync/internal/mosquitto"
	"github.com/shadowsync/shadowsync/shadowstate"
)

// askShadow connects a fresh client to broker, subscribes to thing's get replies and
// asks for its shadow once, waiting up to wait for the answer. It returns the reply's
// payload, or "" when none came (the service is not attached yet).
func askShadow(t *testing.T, broker, thing string, wait time.Duration) string {
	t.Helper()
	c := mqttc.NewClient(mqttc.NewClientOptions().AddBroker(broker).
		SetClientID(fmt.Sprintf("ask-%d", clientSeq.Add(1))).
		SetAutoReconnect(false).SetConnectTimeout(2 * time.Second))
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		return ""
	}
	defer c.Disconnect(50)
	replies := make(chan []byte, 4)
	id := shadowstate.ID{Thing: thing}
	filters := map[string]byte{id.Topic(shadowstate.OpGet, shadowstate.Accepted): 1, id.Topic(shadowstate.OpGet, shadowstate.Rejected): 1}
	if tok := c.SubscribeMultiple(filters, func(_ mqttc.Client, m mqttc.Message) { replies <- m.Payload() }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		return ""
	}
	if tok := c.Publish(id.Topic(shadowstate.OpGet, shadowstate.Request), 1, false, `{}`); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		return ""
	}
	select {
	case p := <-replies:
		return string(p)
	case <-time.After(wait):
		return ""
	}
}

// The attached shadow service outlives a restart of its broker: it reconnects and
// subscribes again by itself, and answers from the shadows it kept, and its Start
// still returns when its ctx ends.
func TestBrokerShadowServiceSurvivesBrokerRestart(t *testing.T) {
	broker := mosquitto.StartBroker(t)
	svc, err := NewBrokerShadowService(BrokerShadowOptions{Broker: "mqtt://" + broker.Addr})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Start(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Start: %v", err)
			}
		case <-time.After(wait):
			t.Errorf("the shadow service did not stop within %v of its ctx ending", wait)
		}
	}
	t.Cleanup(stop)
	select {
	case <-svc.Ready():
	case <-time.After(15 * time.Second):
		t.Fatal("service not ready after 15s")
	}
	pc := dialProtocolClient(t, "tcp://"+broker.Addr, "Restart-1", nil)
	r := pc.request(shadowstate.ID{Thing: "Restart-1"}, shadowstate.OpUpdate, `{"state":{"desired":{"on":true}}}`, 3)
	if num(r[shadowstate.Accepted]["version"]) != "1" {
		t.Fatalf("update before the restart: %v", r)
	}

	broker.Restart()
	var got string
	if !poll(30*time.Second, func() bool {
		got = askShadow(t, "tcp://"+broker.Addr, "Restart-1", 500*time.Millisecond)
		return got != ""
	}) {
		t.Fatal("no answer to a get within 30s of the broker's restart: the service did not come back")
	}
	var doc shadowstate.Document
	if err := shadowstate.Unmarshal([]byte(got), &doc); err != nil {
		t.Fatalf("get reply %s: %v", got, err)
	}
	if doc.Version != 1 || fmt.Sprint(doc.State.Desired) != "map[on:true]" {
		t.Errorf("get after the restart: version %d, desired %v; want version 1 and the desired state kept: %s", doc.Version, doc.State.Desired, got)
	}
	stop()
}

// A service stopped while its broker is down, trying to reconnect, stops at once and
// leaves no goroutine behind (the package's TestMain checks for leaks).
func TestBrokerShadowServiceStopsWhileBrokerIsDown(t *testing.T) {
	broker := mosquitto.StartBroker(t)
	svc, err := NewBrokerShadowService(BrokerShadowOptions{Broker: "mqtt://" + broker.Addr})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- svc.Start(ctx) }()
	select {
	case <-svc.Ready():
	case <-time.After(15 * time.Second):
		t.Fatal("service not ready after 15s")
	}
	broker.Stop()
	// Give paho a chance to notice the loss and start reconnecting: the service's
	// request loop has nothing to wait on that tells.
	pc := mqttc.NewClient(mqttc.NewClientOptions().AddBroker("tcp://" + broker.Addr).SetConnectTimeout(200 * time.Millisecond))
	if tok := pc.Connect(); tok.WaitTimeout(2*time.Second) && tok.Error() == nil {
		t.Fatal("connected to a stopped broker")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Start: %v", err)
		}
	case <-time.After(wait):
		t.Fatalf("the shadow service did not stop within %v of its ctx ending while its broker was down", wait)
	}
}
