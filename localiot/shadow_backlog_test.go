package localiot

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/google/go-cmp/cmp"
	"github.com/shadowsync/shadowsync/shadowstate"
)

// brokenStore is a store whose disk has failed: every Load and Save errs.
type brokenStore struct{}

func (brokenStore) Load(shadowstate.ID) (shadowstate.Shadow, error) {
	return shadowstate.Shadow{}, errors.New("disk on fire")
}
func (brokenStore) Save(shadowstate.Shadow) error { return errors.New("disk on fire") }

// A store that cannot even read still answers 500 with the request's clientToken,
// so the requester learns which request failed instead of timing out.
func TestShadowServiceLoadFailureEchoesToken(t *testing.T) {
	svc := newShadowService(brokenStore{}, fixedClock, slog.New(slog.DiscardHandler))
	for _, tc := range []struct{ payload, want string }{
		{`{"clientToken":"g1"}`, `{"code":500,"message":"Internal service failure","clientToken":"g1","timestamp":1718000000}`},
		{`{"clientToken":7}`, `{"code":500,"message":"Internal service failure","timestamp":1718000000}`},
		{`not json`, `{"code":500,"message":"Internal service failure","timestamp":1718000000}`},
	} {
		got, _ := collect(svc, "$aws/things/Broken/shadow/get", tc.payload)
		want := []published{{"$aws/things/Broken/shadow/get/rejected", tc.want}}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("get %s on a broken store (-want +got):\n%s", tc.payload, diff)
		}
	}
}

// gateStore is a MemoryStore whose first Load waits until released.
type gateStore struct {
	MemoryStore
	once    sync.Once
	blocked chan struct{}
	release chan struct{}
}

func (g *gateStore) Load(id shadowstate.ID) (shadowstate.Shadow, error) {
	g.once.Do(func() { close(g.blocked); <-g.release })
	return g.MemoryStore.Load(id)
}

// allowAll lets every client connect, publish and subscribe on a bare broker.
type allowAll struct{ mqtt.HookBase }

func (allowAll) ID() string { return "allow-all" }
func (allowAll) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}
func (allowAll) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }
func (allowAll) OnACLCheck(*mqtt.Client, string, bool) bool              { return true }

// When requests arrive faster than the broker shadow service handles them, those
// past its backlog bounds are answered with 429 (with their clientToken) and past
// those dropped, instead of piling up in memory without end; the rest are applied in
// order as usual.
func TestBrokerShadowServiceBoundsItsBacklog(t *testing.T) {
	broker := mqtt.New(&mqtt.Options{InlineClient: true})
	if err := broker.AddHook(new(allowAll), nil); err != nil {
		t.Fatal(err)
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "t", Address: "127.0.0.1:0"})
	if err := broker.AddListener(tcp); err != nil {
		t.Fatal(err)
	}
	if err := broker.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = broker.Close() })

	store := &gateStore{blocked: make(chan struct{}), release: make(chan struct{})}
	svc, err := NewBrokerShadowService(BrokerShadowOptions{Broker: "mqtt://" + tcp.Address(), Store: store})
	if err != nil {
		t.Fatal(err)
	}
	req := func(n int) string { return fmt.Sprintf(`{"state":{"reported":{"n":%d}},"clientToken":"t%d"}`, n, n) }
	const topic = "$aws/things/Busy/shadow/update"
	svc.maxBytes, svc.maxThrottled = 3*(len(topic)+len(req(1))+requestOverhead), 2
	done := make(chan error, 1)
	go func() { done <- svc.Start(t.Context()) }()
	t.Cleanup(func() {
		select {
		case <-store.release:
		default:
			close(store.release)
		}
		select {
		case <-done:
		case <-time.After(wait):
			t.Error("the service did not stop")
		}
	})
	select {
	case <-svc.Ready():
	case err := <-done:
		t.Fatalf("service stopped: %v", err)
	case <-time.After(wait):
		t.Fatal("service not ready")
	}

	c := mustConnect(t, "tcp://"+tcp.Address(), "device")
	c.mustSubscribe(t, "$aws/things/Busy/shadow/update/accepted", "$aws/things/Busy/shadow/update/rejected")
	c.publish(t, topic, req(0))
	select {
	case <-store.blocked: // the service is busy with request 0
	case <-time.After(wait):
		t.Fatal("the service never loaded a shadow")
	}
	for n := 1; n <= 6; n++ {
		c.publish(t, topic, req(n))
	}
	// Requests 1-3 fit the byte bound, 4 and 5 are kept to be refused, 6 is dropped.
	var queued, dropped int
	if !poll(wait, func() bool {
		svc.mu.Lock()
		queued, dropped = len(svc.pending), svc.dropped
		svc.mu.Unlock()
		return queued == 5 && dropped == 1
	}) {
		t.Fatalf("backlog holds %d requests with %d dropped, want 5 and 1", queued, dropped)
	}
	close(store.release)

	type answer struct{ kind, token string }
	var got []answer
	for range 6 {
		m := c.next(t)
		var r struct {
			ClientToken string `json:"clientToken"`
			Code        int    `json:"code"`
			Message     string `json:"message"`
		}
		if err := shadowstate.Unmarshal(m.Payload(), &r); err != nil {
			t.Fatalf("reply %q: %v", m.Payload(), err)
		}
		kind := m.Topic()[strings.LastIndex(m.Topic(), "/")+1:]
		if kind == string(shadowstate.Rejected) {
			kind = fmt.Sprintf("%d %s", r.Code, r.Message)
		}
		got = append(got, answer{kind, r.ClientToken})
	}
	want := []answer{
		{"accepted", "t0"}, {"accepted", "t1"}, {"accepted", "t2"}, {"accepted", "t3"},
		{"429 Too Many Requests", "t4"}, {"429 Too Many Requests", "t5"},
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(answer{})); diff != "" {
		t.Fatalf("replies (-want +got):\n%s", diff)
	}
	// Request 6 got no answer: the next reply is the one to a later request.
	c.publish(t, topic, req(7))
	c.expectPrefix(t, topic+"/accepted", `{"state":{"reported":{"n":7}}`)
	if s, _ := store.MemoryStore.Load(shadowstate.ID{Thing: "Busy"}); s.Version != 5 {
		t.Errorf("shadow version %d, want 5: requests 0-3 and 7 applied, 4-6 not", s.Version)
	}
}

// fakeMessage is a paho message as its router hands it to a handler.
type fakeMessage struct{ topic, payload string }

func (m fakeMessage) Duplicate() bool   { return false }
func (m fakeMessage) Qos() byte         { return 1 }
func (m fakeMessage) Retained() bool    { return false }
func (m fakeMessage) Topic() string     { return m.topic }
func (m fakeMessage) MessageID() uint16 { return 1 }
func (m fakeMessage) Payload() []byte   { return []byte(m.payload) }
func (m fakeMessage) Ack()              {}

// Requests with empty payloads (gets, deletes) count against the backlog bound too.
func TestBrokerShadowServiceBoundsEmptyRequests(t *testing.T) {
	svc, err := NewBrokerShadowService(BrokerShadowOptions{Broker: "mqtt://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	const topic = "$aws/things/Busy/shadow/get"
	svc.maxBytes, svc.maxThrottled = 2*(len(topic)+requestOverhead), 1
	for range 4 {
		svc.enqueue(nil, fakeMessage{topic: topic})
	}
	kept, throttled := 0, 0
	for _, r := range svc.pending {
		if r.throttled {
			throttled++
		} else {
			kept++
		}
	}
	if kept != 2 || throttled != 1 || svc.dropped != 1 {
		t.Errorf("kept %d, throttled %d, dropped %d; want 2, 1, 1", kept, throttled, svc.dropped)
	}
}
