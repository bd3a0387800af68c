package localiot

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	mqttc "github.com/eclipse/paho.mqtt.golang"
	"github.com/shadowsync/shadowsync/internal/mosquitto"
	"github.com/shadowsync/shadowsync/shadowstate"
)

// protocolClient is an MQTT client that speaks the shadow protocol by hand, as a device
// using any AWS IoT SDK would, and records every reply it receives.
type protocolClient struct {
	t       *testing.T
	c       mqttc.Client
	replies chan mqttc.Message
}

var clientSeq atomic.Int64

// dialProtocolClient connects to broker (tcp://host:port) with the given options
// applied, and subscribes to every reply topic of thing's classic shadow and of its
// named shadow "cfg".
func dialProtocolClient(t *testing.T, broker, thing string, configure func(*mqttc.ClientOptions)) *protocolClient {
	t.Helper()
	pc := &protocolClient{t: t, replies: make(chan mqttc.Message, 256)}
	co := mqttc.NewClientOptions().AddBroker(broker).
		SetClientID(fmt.Sprintf("%s@proto-%d", thing, clientSeq.Add(1))). // a thing certificate needs its name as the client ID's prefix
		SetAutoReconnect(false).SetConnectTimeout(5 * time.Second)
	if configure != nil {
		configure(co)
	}
	pc.c = mqttc.NewClient(co)
	if tok := pc.c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect to %s: %v", broker, tok.Error())
	}
	t.Cleanup(func() { pc.c.Disconnect(50) })
	for _, id := range []shadowstate.ID{{Thing: thing}, {Thing: thing, Name: "cfg"}} {
		filters := map[string]byte{}
		for _, r := range []struct {
			op   shadowstate.Op
			kind shadowstate.Kind
		}{
			{shadowstate.OpGet, shadowstate.Accepted}, {shadowstate.OpGet, shadowstate.Rejected},
			{shadowstate.OpUpdate, shadowstate.Accepted}, {shadowstate.OpUpdate, shadowstate.Rejected},
			{shadowstate.OpUpdate, shadowstate.DeltaKind}, {shadowstate.OpUpdate, shadowstate.Documents},
			{shadowstate.OpDelete, shadowstate.Accepted}, {shadowstate.OpDelete, shadowstate.Rejected},
		} {
			filters[id.Topic(r.op, r.kind)] = 1
		}
		tok := pc.c.SubscribeMultiple(filters, func(_ mqttc.Client, m mqttc.Message) { pc.replies <- m })
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("subscribe: %v", tok.Error())
		}
		for f, code := range tok.(*mqttc.SubscribeToken).Result() {
			if code != 1 {
				t.Fatalf("subscription to %s refused with code %d", f, code)
			}
		}
	}
	return pc
}

// request publishes payload on the request topic of op and returns the replies that
// follow, until want of them have arrived.
func (pc *protocolClient) request(id shadowstate.ID, op shadowstate.Op, payload string, want int) map[shadowstate.Kind]map[string]any {
	pc.t.Helper()
	if tok := pc.c.Publish(id.Topic(op, shadowstate.Request), 1, false, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		pc.t.Fatalf("publish %s: %v", op, tok.Error())
	}
	got := map[shadowstate.Kind]map[string]any{}
	timeout := time.After(10 * time.Second)
	for len(got) < want {
		select {
		case m := <-pc.replies:
			var body map[string]any
			if err := shadowstate.Unmarshal(m.Payload(), &body); err != nil {
				pc.t.Fatalf("reply on %s is not JSON: %v: %s", m.Topic(), err, m.Payload())
			}
			_, _, kind, ok := shadowstate.ParseTopic(m.Topic())
			if !ok {
				pc.t.Fatalf("reply on a topic that is not a shadow topic: %s", m.Topic())
			}
			if _, dup := got[kind]; dup {
				pc.t.Fatalf("two %s replies to one %s request", kind, op)
			}
			got[kind] = body
		case <-timeout:
			pc.t.Fatalf("%s %s: %d of %d replies after 10s: %v", id, op, len(got), want, got)
		}
	}
	return got
}

// expectQuiet fails if any reply arrives before a marker get request is answered:
// it proves that an earlier request published nothing more.
func (pc *protocolClient) expectQuiet(id shadowstate.ID) {
	pc.t.Helper()
	got := pc.request(id, shadowstate.OpGet, `{"clientToken":"marker"}`, 1)
	for kind, body := range got {
		if body["clientToken"] != "marker" {
			pc.t.Fatalf("unexpected %s reply: %v", kind, body)
		}
	}
}

func num(v any) string {
	if n, ok := v.(json.Number); ok {
		return n.String()
	}
	return fmt.Sprint(v)
}

// runShadowProtocol drives every operation of the shadow protocol through a broker and
// checks the replies a device would see. It is the same for every way the service runs.
func runShadowProtocol(t *testing.T, pc *protocolClient, thing string) {
	classic := shadowstate.ID{Thing: thing}
	named := shadowstate.ID{Thing: thing, Name: "cfg"}

	r := pc.request(classic, shadowstate.OpGet, `{"clientToken":"g0"}`, 1)
	if rej := r[shadowstate.Rejected]; rej == nil || num(rej["code"]) != "404" || rej["message"] != "No shadow exists with name: '"+thing+"'" || rej["clientToken"] != "g0" {
		t.Fatalf("get of a new shadow: %v", r)
	}

	r = pc.request(classic, shadowstate.OpUpdate, `{"state":{"desired":{"temp":22,"mode":"heat"}},"clientToken":"u1"}`, 3)
	acc, delta, docs := r[shadowstate.Accepted], r[shadowstate.DeltaKind], r[shadowstate.Documents]
	if acc == nil || delta == nil || docs == nil {
		t.Fatalf("update desired: want accepted, delta and documents, got %v", r)
	}
	if num(acc["version"]) != "1" || acc["clientToken"] != "u1" || num(delta["version"]) != "1" || docs["previous"] != nil {
		t.Fatalf("update desired replies: %v", r)
	}
	if state := delta["state"].(map[string]any); num(state["temp"]) != "22" || state["mode"] != "heat" {
		t.Fatalf("delta state %v", state)
	}

	r = pc.request(classic, shadowstate.OpUpdate, `{"state":{"reported":{"temp":22,"mode":"heat","rssi":-60}},"clientToken":"u2"}`, 2)
	if r[shadowstate.Accepted] == nil || r[shadowstate.Documents] == nil || num(r[shadowstate.Accepted]["version"]) != "2" {
		t.Fatalf("report in sync: %v", r)
	}
	pc.expectQuiet(classic) // no delta once reported caught up

	r = pc.request(classic, shadowstate.OpGet, `{"clientToken":"g1"}`, 1)
	doc := r[shadowstate.Accepted]
	if doc == nil || num(doc["version"]) != "2" || doc["clientToken"] != "g1" {
		t.Fatalf("get: %v", r)
	}
	if _, hasDelta := doc["state"].(map[string]any)["delta"]; hasDelta {
		t.Fatalf("get shows a delta for a shadow in sync: %v", doc)
	}

	r = pc.request(classic, shadowstate.OpUpdate, `{"state":{"desired":{"temp":25}},"version":1,"clientToken":"u3"}`, 1)
	if rej := r[shadowstate.Rejected]; rej == nil || num(rej["code"]) != "409" || rej["message"] != "Version conflict" || rej["clientToken"] != "u3" {
		t.Fatalf("stale version: %v", r)
	}
	r = pc.request(classic, shadowstate.OpUpdate, `{"state":{"desired":{"temp":25}},"version":2}`, 3)
	if d := r[shadowstate.DeltaKind]; d == nil || num(d["state"].(map[string]any)["temp"]) != "25" || num(d["version"]) != "3" {
		t.Fatalf("update at the right version: %v", r)
	}

	r = pc.request(classic, shadowstate.OpUpdate, `{"state":{"desired":"hot"}}`, 1)
	if rej := r[shadowstate.Rejected]; rej == nil || num(rej["code"]) != "400" || rej["message"] != "Desired node must be an object" {
		t.Fatalf("bad update: %v", r)
	}
	r = pc.request(classic, shadowstate.OpUpdate, `{"state":{"reported":{"blob":"`+strings.Repeat("x", 9000)+`"}}}`, 1)
	if rej := r[shadowstate.Rejected]; rej == nil || num(rej["code"]) != "413" {
		t.Fatalf("oversize update: %v", r)
	}

	// The named shadow is a document of its own.
	r = pc.request(named, shadowstate.OpUpdate, `{"state":{"reported":{"fw":"1.0"}}}`, 2)
	if num(r[shadowstate.Accepted]["version"]) != "1" {
		t.Fatalf("named shadow update: %v", r)
	}
	r = pc.request(named, shadowstate.OpGet, ``, 1)
	if doc := r[shadowstate.Accepted]; doc == nil || doc["state"].(map[string]any)["reported"].(map[string]any)["fw"] != "1.0" {
		t.Fatalf("named shadow get: %v", r)
	}

	r = pc.request(classic, shadowstate.OpDelete, `{"clientToken":"d1"}`, 1)
	if acc := r[shadowstate.Accepted]; acc == nil || num(acc["version"]) != "3" || acc["clientToken"] != "d1" {
		t.Fatalf("delete: %v", r)
	}
	r = pc.request(classic, shadowstate.OpGet, ``, 1)
	if rej := r[shadowstate.Rejected]; rej == nil || num(rej["code"]) != "404" {
		t.Fatalf("get after delete: %v", r)
	}
	r = pc.request(named, shadowstate.OpGet, ``, 1)
	if r[shadowstate.Accepted] == nil {
		t.Fatalf("deleting the classic shadow touched the named one: %v", r)
	}
	r = pc.request(classic, shadowstate.OpUpdate, `{"state":{"reported":{"temp":20}}}`, 2)
	if num(r[shadowstate.Accepted]["version"]) != "5" {
		t.Fatalf("recreated shadow version: %v", r)
	}
}

func TestShadowProtocolOnMosquitto(t *testing.T) {
	addr := mosquitto.Start(t)
	svc, err := NewBrokerShadowService(BrokerShadowOptions{Broker: "mqtt://" + addr})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Start: %v", err)
			}
		case <-time.After(wait):
			t.Errorf("the shadow service did not stop within %v of its ctx ending", wait)
		}
	})
	select {
	case <-svc.Ready():
	case err := <-done:
		t.Fatalf("service stopped: %v", err)
	case <-time.After(15 * time.Second):
		t.Fatal("service not ready after 15s")
	}
	pc := dialProtocolClient(t, "tcp://"+addr, "Mosq-1", nil)
	runShadowProtocol(t, pc, "Mosq-1")
}

func TestBrokerShadowOptionsErrors(t *testing.T) {
	if _, err := NewBrokerShadowService(BrokerShadowOptions{Broker: "mqtt://127.0.0.1:1", EventMirror: "$bad"}); err == nil || !strings.Contains(err.Error(), "EventMirror") {
		t.Errorf("a mirror prefix starting with $ was accepted: %v", err)
	}
	for _, tc := range []struct{ url, want string }{
		{"", "Broker URL is required"},
		{"http://127.0.0.1:1883", "scheme must be"},
		{"mqtt://", "has no host"},
		{"::bad", "broker URL"},
	} {
		_, err := NewBrokerShadowService(BrokerShadowOptions{Broker: tc.url})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Broker %q: error %v, want one containing %q", tc.url, err, tc.want)
		}
	}
}
