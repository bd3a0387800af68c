package transport_test

import (
	"context"
	"errors"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/shadowsync/shadowsync/transport"
)

// holdHook holds every SUBSCRIBE of one filter in the broker until release is
// closed, and reports each UNSUBSCRIBE the broker handles.
type holdHook struct {
	allowAll
	filter       string
	held         chan struct{} // receives when a SUBSCRIBE of filter is being held
	release      chan struct{}
	unsubscribed chan string
}

func (h *holdHook) ID() string { return "hold" }

func (h *holdHook) Provides(b byte) bool {
	switch b {
	case mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnSubscribe, mqtt.OnUnsubscribed:
		return true
	}
	return false
}

func (h *holdHook) OnSubscribe(_ *mqtt.Client, pk packets.Packet) packets.Packet {
	for _, f := range pk.Filters {
		if f.Filter == h.filter {
			h.held <- struct{}{}
			<-h.release
		}
	}
	return pk
}

func (h *holdHook) OnUnsubscribed(_ *mqtt.Client, pk packets.Packet) {
	for _, f := range pk.Filters {
		h.unsubscribed <- f.Filter
	}
}

// startHoldBroker starts a bare broker whose holdHook holds the SUBSCRIBEs of filter;
// whatever the test has not released is released when it ends.
func startHoldBroker(t *testing.T, filter string) (*holdHook, *mqtt.Server, string) {
	t.Helper()
	hook := &holdHook{filter: filter, held: make(chan struct{}, 1), release: make(chan struct{}), unsubscribed: make(chan string, 8)}
	broker, endpoint := startBareBroker(t, hook)
	t.Cleanup(func() {
		select {
		case <-hook.release:
		default:
			close(hook.release)
		}
	})
	return hook, broker, endpoint
}

// A SUBSCRIBE the caller gives up on must not leave the subscription on the broker
// once it is finally granted: messages on it would reach nobody, and on AWS IoT it
// would count against the connection's subscription limit.
func TestSubscribeGivenUpIsWithdrawn(t *testing.T) {
	hook, broker, endpoint := startHoldBroker(t, "slow/#")

	c := dialConn(t, transport.Config{Endpoint: endpoint, ClientID: "withdraw"})
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		_, err := c.Subscribe(ctx, "slow/#", newCollector(), transport.QoS(1))
		errc <- err
	}()
	select {
	case <-hook.held:
	case <-time.After(wait):
		t.Fatal("the SUBSCRIBE never reached the broker")
	}
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Subscribe = %v, want context.Canceled", err)
		}
	case <-time.After(wait):
		t.Fatal("Subscribe did not return once its context was cancelled")
	}
	close(hook.release) // the broker now grants the SUBSCRIBE
	select {
	case f := <-hook.unsubscribed:
		if f != "slow/#" {
			t.Fatalf("UNSUBSCRIBE of %q, want slow/#", f)
		}
	case <-time.After(wait):
		t.Fatal("the given-up subscription was never withdrawn")
	}
	if n := len(broker.Topics.Subscribers("slow/x").Subscriptions); n != 0 {
		t.Errorf("broker holds %d subscriptions on slow/#, want 0", n)
	}

	// The filter can be subscribed again afterwards, and works.
	col := newCollector()
	sctx, scancel := context.WithTimeout(t.Context(), wait)
	defer scancel()
	if _, err := c.Subscribe(sctx, "slow/#", col, transport.QoS(1)); err != nil {
		t.Fatalf("second Subscribe: %v", err)
	}
	if err := broker.Publish("slow/x", []byte("hi"), false, 1); err != nil {
		t.Fatal(err)
	}
	if m := col.next(t); m.Topic != "slow/x" || string(m.Payload) != "hi" {
		t.Errorf("got %s %q, want slow/x \"hi\"", m.Topic, m.Payload)
	}
}

// A filter unsubscribed while a new session is being restored — after resubscribe
// has sent its SUBSCRIBE, before the session is online, when Unsubscribe sends
// nothing itself — must not stay on the broker: its messages would reach the client
// for the whole session, routed nowhere (a shadow client moving to its wildcard
// filters as the connection comes up got every message of those topics twice).
func TestUnsubscribeDuringResubscribeReachesTheBroker(t *testing.T) {
	hook, broker, endpoint := startHoldBroker(t, "gone/#")
	ev := newEvents()
	cfg := transport.Config{Endpoint: endpoint, ClientID: "resubscribe-unsubscribe"}
	ev.hook(&cfg)
	kept := newCollector()
	c := newConn(t, cfg, func(c *transport.Conn) {
		// Offline: recorded, made by the first session's resubscribe.
		for _, f := range []string{"gone/#", "kept/#"} {
			var h transport.Handler = newCollector()
			if f == "kept/#" {
				h = kept
			}
			if _, err := c.Subscribe(t.Context(), f, h, transport.QoS(1)); err != nil {
				t.Fatalf("Subscribe %s offline: %v", f, err)
			}
		}
	})
	select {
	case <-hook.held:
	case <-time.After(wait):
		t.Fatal("the resubscribe's SUBSCRIBE never reached the broker")
	}
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	if err := c.Unsubscribe(ctx, "gone/#"); err != nil {
		t.Fatalf("Unsubscribe while the session is restored: %v", err)
	}
	close(hook.release) // the broker now grants the SUBSCRIBE
	ev.waitOnline(t)
	select {
	case f := <-hook.unsubscribed:
		if f != "gone/#" {
			t.Fatalf("UNSUBSCRIBE of %q, want gone/#", f)
		}
	default:
		t.Fatal("online, and the filter removed during the resubscribe was never unsubscribed")
	}
	if n := len(broker.Topics.Subscribers("gone/x").Subscriptions); n != 0 {
		t.Errorf("broker holds %d subscriptions on gone/#, want 0", n)
	}
	// The other filter works, and the removed one brings nothing: a message on it,
	// published before one on kept/#, would have arrived first.
	before := c.Received()
	if err := broker.Publish("gone/x", []byte("no"), false, 1); err != nil {
		t.Fatal(err)
	}
	if err := broker.Publish("kept/x", []byte("yes"), false, 1); err != nil {
		t.Fatal(err)
	}
	if m := kept.next(t); m.Topic != "kept/x" {
		t.Fatalf("got %s, want kept/x", m.Topic)
	}
	if n := c.Received() - before; n != 1 {
		t.Errorf("received %d messages, want only kept/x's", n)
	}
}
