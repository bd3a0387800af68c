package transport_test

import (
	"context"
	"errors"
	"fmt"
	"github.com/shadowsync/shadowsync/transport"
	"strings"
	"testing"
	"time"

	"github.com/shadowsync/shadowsync/internal/testserver"
	"github.com/shadowsync/shadowsync/localiot"
)

// TestHandlersIsolated: on a live connection, a handler that panics and one that
// blocks do not stop a healthy handler of the same filter, other filters, or the
// connection; and a handler may call blocking Conn methods (in the AWS IoT Device SDK
// for Python v1 that deadlocks).
func TestHandlersIsolated(t *testing.T) {
	endpoint := testserver.Start(t, localiot.Options{}).Endpoints().Plain
	ev := newEvents()
	cfg := transport.Config{Endpoint: endpoint}
	ev.hook(&cfg)
	c := newConn(t, cfg, nil)
	ev.waitOnline(t)
	ctx := t.Context()

	release := make(chan struct{})
	panicked := make(chan struct{}, 64)
	subscribe := func(filter string, h transport.HandlerFunc) *transport.Subscription {
		t.Helper()
		sub, err := c.Subscribe(ctx, filter, h, transport.QoS(1), transport.Buffer(4))
		if err != nil {
			t.Fatal(err)
		}
		return sub
	}
	panicking := subscribe("iso/+", func(context.Context, transport.Message) { panicked <- struct{}{}; panic("handler bug") })
	blocked := subscribe("iso/+", func(ctx context.Context, _ transport.Message) {
		select {
		case <-release:
		case <-ctx.Done():
		}
	})
	healthy := newCollector()
	if _, err := c.Subscribe(ctx, "iso/+", healthy, transport.QoS(1)); err != nil {
		t.Fatal(err)
	}
	// This handler answers each message with a QoS 1 publish and a subscribe: blocking
	// calls from inside a handler.
	replies := newCollector()
	if _, err := c.Subscribe(ctx, "reply/#", replies, transport.QoS(1)); err != nil {
		t.Fatal(err)
	}
	// The handler reports when its calls have returned: the reply can reach the test
	// before the handler's publish is acknowledged, and the test must not end (and
	// close the connection) under it.
	asked := make(chan error, 4)
	subscribe("ask/#", func(ctx context.Context, m transport.Message) {
		if _, err := c.Subscribe(ctx, "ask/extra", transport.HandlerFunc(func(context.Context, transport.Message) {}), transport.QoS(1)); err != nil {
			asked <- fmt.Errorf("Subscribe from a handler: %w", err)
			return
		}
		if err := c.Publish(ctx, "reply/"+m.Topic, m.Payload, transport.QoS(1)); err != nil {
			asked <- fmt.Errorf("Publish from a handler: %w", err)
			return
		}
		asked <- nil
	})

	const n = 20 // more than the blocked handler's buffer of 4
	for i := range n {
		if err := c.Publish(ctx, fmt.Sprintf("iso/%d", i), []byte("x"), transport.QoS(1)); err != nil {
			t.Fatalf("Publish %d: %v", i, err)
		}
	}
	for i := range n {
		if m := healthy.next(t); m.Topic != fmt.Sprintf("iso/%d", i) {
			t.Fatalf("healthy handler got %s, want iso/%d (in order)", m.Topic, i)
		}
	}
	// The blocked handler holds one message and buffers 4: the rest were dropped, and
	// counted.
	if d := blocked.Dropped(); d < n-5 || d > n-4 {
		t.Errorf("blocked handler: Dropped() = %d, want %d (or %d if it had not taken the first yet)", d, n-5, n-4)
	}
	if got, want := c.Dropped(), blocked.Dropped()+panicking.Dropped(); got != want {
		t.Errorf("Conn.Dropped() = %d, want the handlers' %d", got, want)
	}
	if err := c.Publish(ctx, "ask/1", []byte("q"), transport.QoS(1)); err != nil {
		t.Fatal(err)
	}
	if m := replies.next(t); m.Topic != "reply/ask/1" {
		t.Errorf("reply on %s", m.Topic)
	}
	select {
	case err := <-asked:
		if err != nil {
			t.Error(err)
		}
	case <-time.After(wait):
		t.Fatal("the handler's Subscribe and Publish did not return")
	}
	if !c.IsOnline() {
		t.Error("connection went down")
	}
	select {
	case err := <-ev.offline:
		t.Errorf("went offline: %v", err)
	default:
	}
	// The panicking handler survives its panics: it runs again after the first.
	for i := range 2 {
		select {
		case <-panicked:
		case <-time.After(wait):
			t.Fatalf("panicking handler ran %d times, want at least 2", i)
		}
	}
	close(release)
}

// TestSubscribeRules: QoS 2 refused with a clear error, the subscription cap, the
// server's refusal surfaced as ErrSubscribeRefused, and Unsubscribe stopping delivery.
func TestSubscribeRules(t *testing.T) {
	eps := testserver.Start(t, localiot.Options{Plain: &localiot.PlainListener{ThingFromClientID: true}}).Endpoints()
	c := dialConn(t, transport.Config{Endpoint: eps.Plain, ClientID: "thing1", MaxSubscriptions: 2})
	ctx := t.Context()
	h := newCollector()

	if _, err := c.Subscribe(ctx, "a", h, transport.QoS(2)); !errors.Is(err, transport.ErrQoS2) || !strings.Contains(err.Error(), "AWS IoT") {
		t.Errorf("Subscribe transport.QoS 2 = %v", err)
	}
	if err := c.Publish(ctx, "a", nil, transport.QoS(2)); !errors.Is(err, transport.ErrQoS2) {
		t.Errorf("Publish transport.QoS 2 = %v", err)
	}
	// A thing may not read another thing's shadow: the server refuses in SUBACK.
	if _, err := c.Subscribe(ctx, "$aws/things/thing2/shadow/update/delta", h, transport.QoS(1)); !errors.Is(err, transport.ErrSubscribeRefused) {
		t.Errorf("Subscribe to a forbidden filter = %v, want transport.ErrSubscribeRefused", err)
	}
	delta := "$aws/things/thing1/shadow/update/delta"
	sub1, err := c.Subscribe(ctx, delta, h, transport.QoS(1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Subscribe(ctx, delta, h, transport.QoS(1)); err != nil {
		t.Errorf("second handler on the same filter: %v", err)
	}
	if _, err := c.Subscribe(ctx, "$aws/things/thing1/shadow/get/accepted", h, transport.QoS(1)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Subscribe(ctx, "$aws/things/thing1/shadow/get/rejected", h, transport.QoS(1)); !errors.Is(err, transport.ErrTooManySubscriptions) {
		t.Errorf("third filter with MaxSubscriptions 2 = %v", err)
	}
	if err := sub1.Unsubscribe(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Unsubscribe(ctx, delta, "$aws/things/thing1/shadow/get/accepted"); err != nil {
		t.Fatal(err)
	}
	if transport.FilterCount(c) != 0 {
		t.Errorf("%d filters left", transport.FilterCount(c))
	}
}

// TestResubscribeBatches: 20 filters registered while offline are all made on
// connect, although localiot (like AWS) refuses more than 8 filters per SUBSCRIBE.
func TestResubscribeBatches(t *testing.T) {
	endpoint := testserver.Start(t, localiot.Options{}).Endpoints().Plain
	c, err := transport.New(transport.Config{Endpoint: endpoint})
	if err != nil {
		t.Fatal(err)
	}
	got := newCollector()
	for i := range 20 {
		if _, err := c.Subscribe(t.Context(), fmt.Sprintf("batch/%d", i), got, transport.QoS(1)); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() { done <- c.Start(context.Background()) }()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		_ = c.Close(ctx)
		<-done
	}()
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	if err := c.AwaitConnection(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if err := c.Publish(ctx, fmt.Sprintf("batch/%d", i), nil, transport.QoS(1)); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	for range 20 {
		seen[got.next(t).Topic] = true
	}
	if len(seen) != 20 {
		t.Errorf("received on %d of 20 filters", len(seen))
	}
}

// TestSharedSubscription: $share/<group>/ filters deliver each message to one member
// of the group.
func TestSharedSubscription(t *testing.T) {
	endpoint := testserver.Start(t, localiot.Options{}).Endpoints().Plain
	a := dialConn(t, transport.Config{Endpoint: endpoint})
	b := dialConn(t, transport.Config{Endpoint: endpoint})
	ctx := t.Context()
	got := newCollector()
	for _, c := range []*transport.Conn{a, b} {
		if _, err := c.Subscribe(ctx, "$share/fleet/shared/+", got, transport.QoS(1)); err != nil {
			t.Fatal(err)
		}
	}
	const n = 10
	for i := range n {
		if err := a.Publish(ctx, fmt.Sprintf("shared/%d", i), nil, transport.QoS(1)); err != nil {
			t.Fatal(err)
		}
	}
	for range n {
		got.next(t)
	}
	got.none(t, 200*time.Millisecond) // each message once, not once per member
}

// TestDuplicateClientID: two connections with one client ID — the older is dropped
// by the server and the loss is reported as ErrClosedByServer naming the client ID.
// Generated IDs never collide.
func TestDuplicateClientID(t *testing.T) {
	endpoint := testserver.Start(t, localiot.Options{}).Endpoints().Plain
	ev := newEvents()
	cfg := transport.Config{Endpoint: endpoint, ClientID: "same-id", Backoff: transport.ExponentialBackoff(time.Hour, time.Hour, 0)}
	ev.hook(&cfg)
	newConn(t, cfg, nil)
	ev.waitOnline(t)
	dialConn(t, transport.Config{Endpoint: endpoint, ClientID: "same-id"})
	err := ev.waitOffline(t)
	if !errors.Is(err, transport.ErrClosedByServer) || !strings.Contains(err.Error(), `client ID "same-id"`) {
		t.Errorf("OnOffline(%v); want transport.ErrClosedByServer naming the client ID", err)
	}

	a := dialConn(t, transport.Config{Endpoint: endpoint})
	b := dialConn(t, transport.Config{Endpoint: endpoint})
	if a.ClientID() == b.ClientID() {
		t.Fatalf("generated client IDs collide: %s", a.ClientID())
	}
	roundTrip(t, a, b, "ids/ok")
	if !a.IsOnline() || !b.IsOnline() {
		t.Error("connections with generated IDs kicked each other")
	}
}

// TestLastWill: the Will is published when the connection dies without DISCONNECT,
// and not on Close.
func TestLastWill(t *testing.T) {
	p, endpoint, observer := proxied(t)
	got := newCollector()
	if _, err := observer.Subscribe(t.Context(), "will/#", got, transport.QoS(1)); err != nil {
		t.Fatal(err)
	}
	ev := newEvents()
	cfg := transport.Config{Endpoint: endpoint, Will: &transport.Will{Topic: "will/gone", Payload: []byte("bye"), QoS: 1},
		Backoff: transport.ExponentialBackoff(time.Hour, time.Hour, 0)}
	ev.hook(&cfg)
	newConn(t, cfg, nil)
	ev.waitOnline(t)
	p.Cut()
	if m := got.next(t); string(m.Payload) != "bye" {
		t.Errorf("will payload %q", m.Payload)
	}
}

// TestOfflineQueueDisabled: with queueing off, Publish while offline fails with
// ErrOffline at once.
func TestOfflineQueueDisabled(t *testing.T) {
	c, err := transport.New(transport.Config{DisableOfflineQueue: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(t.Context())
	if err := c.Publish(t.Context(), "t", nil, transport.QoS(1)); !errors.Is(err, transport.ErrOffline) {
		t.Errorf("Publish = %v, want transport.ErrOffline", err)
	}
}
