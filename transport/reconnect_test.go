package transport_test

import (
	"context"
	"errors"
	"fmt"
	"github.com/shadowsync/shadowsync/transport"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shadowsync/shadowsync/internal/faultproxy"
	"github.com/shadowsync/shadowsync/internal/testserver"
	"github.com/shadowsync/shadowsync/localiot"
)

// proxied starts a localiot broker, a fault proxy in front of it, an observer Conn
// connected directly, and returns the proxy's endpoint.
func proxied(t *testing.T) (p *faultproxy.Proxy, endpoint string, observer *transport.Conn) {
	t.Helper()
	direct := testserver.Start(t, localiot.Options{}).Endpoints().Plain
	addr := strings.TrimPrefix(direct, "mqtt://")
	p, err := faultproxy.Start(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p, "mqtt://" + p.Addr(), dialConn(t, transport.Config{Endpoint: direct})
}

// TestReconnectBackoffSequence: a cut connection reconnects after waits of
// min(2^n × 1 s, 32 s) while the link stays cut (asserted with an injected clock, no
// sleeping); the backoff starts again from 1 s once a connection has stayed up 20 s;
// subscriptions come back after each reconnect.
func TestReconnectBackoffSequence(t *testing.T) {
	p, endpoint, observer := proxied(t)
	fc := newFakeClock()
	ev := newEvents()
	cfg := transport.Config{Endpoint: endpoint}
	ev.hook(&cfg)
	c := newConn(t, cfg, func(c *transport.Conn) { transport.SetClock(c, fc) })
	ev.waitOnline(t)

	got := newCollector()
	ctx := t.Context()
	if _, err := c.Subscribe(ctx, "seq/+", got, transport.QoS(1)); err != nil {
		t.Fatal(err)
	}

	p.Cut()
	if err := ev.waitOffline(t); !errors.Is(err, transport.ErrClosedByServer) {
		t.Errorf("OnOffline(%v), want transport.ErrClosedByServer", err)
	}
	var waits []time.Duration
	for range 7 {
		w := fc.next(t)
		waits = append(waits, w.d)
		fc.fire(w) // the attempt that follows fails: the proxy still cuts
	}
	w := fc.next(t)
	waits = append(waits, w.d)
	p.Restore()
	fc.fire(w)
	ev.waitOnline(t)
	want := []time.Duration{1, 2, 4, 8, 16, 32, 32, 32}
	for i := range want {
		want[i] *= time.Second
	}
	if diff := cmp.Diff(want, waits); diff != "" {
		t.Errorf("backoff waits (-want +got):\n%s", diff)
	}

	// The subscription is back.
	if err := observer.Publish(ctx, "seq/1", []byte("after reconnect"), transport.QoS(1)); err != nil {
		t.Fatal(err)
	}
	if m := got.next(t); string(m.Payload) != "after reconnect" {
		t.Errorf("got %q", m.Payload)
	}

	// Stable for 20 s: the next loss starts again from 1 s.
	fc.Advance(transport.DefaultStableAfter)
	p.CutOnce()
	ev.waitOffline(t)
	if w := fc.next(t); w.d != time.Second {
		t.Errorf("after a stable connection: wait %v, want 1s", w.d)
	} else {
		fc.fire(w)
	}
	ev.waitOnline(t)

	// Not stable (no time passed): the next loss continues the sequence.
	p.CutOnce()
	ev.waitOffline(t)
	if w := fc.next(t); w.d != 2*time.Second {
		t.Errorf("after a short-lived connection: wait %v, want 2s", w.d)
	} else {
		fc.fire(w)
	}
	ev.waitOnline(t)
}

// TestOfflinePublishes: QoS 1 publishes made while the link is cut arrive after the
// reconnect, in order; with the 5 slots and 7 publishes of the example in the AWS IoT
// Device SDK for Python v1's README, DropNewest delivers 1–5 and refuses 6 and 7 with
// transport.ErrQueueFull, DropOldest delivers 3–7.
func TestOfflinePublishes(t *testing.T) {
	for _, tt := range []struct {
		policy      transport.DropPolicy
		want        []string
		wantRefused int
	}{
		{transport.DropNewest, []string{"pub_req1", "pub_req2", "pub_req3", "pub_req4", "pub_req5"}, 2},
		{transport.DropOldest, []string{"pub_req3", "pub_req4", "pub_req5", "pub_req6", "pub_req7"}, 0},
	} {
		t.Run(tt.policy.String(), func(t *testing.T) {
			p, endpoint, observer := proxied(t)
			ctx := t.Context()
			got := newCollector()
			if _, err := observer.Subscribe(ctx, "offline/#", got, transport.QoS(1)); err != nil {
				t.Fatal(err)
			}
			fc := newFakeClock()
			ev := newEvents()
			cfg := transport.Config{Endpoint: endpoint, OfflineQueueSize: 5, OfflineDropPolicy: tt.policy, DrainRate: 50}
			ev.hook(&cfg)
			c := newConn(t, cfg, func(c *transport.Conn) { transport.SetClock(c, fc) })
			ev.waitOnline(t)

			p.Cut()
			ev.waitOffline(t)
			w := fc.next(t) // the loop waits before reconnecting: publish now
			refused := 0
			for i := 1; i <= 7; i++ {
				err := c.Publish(ctx, "offline/q", fmt.Appendf(nil, "pub_req%d", i), transport.QoS(1))
				switch {
				case errors.Is(err, transport.ErrQueueFull):
					refused++
				case err != nil:
					t.Fatalf("Publish %d: %v", i, err)
				}
			}
			if refused != tt.wantRefused || c.Queued() != 5 {
				t.Fatalf("refused %d, queued %d; want %d, 5", refused, c.Queued(), tt.wantRefused)
			}
			p.Restore()
			start := time.Now()
			fc.fire(w)
			ev.waitOnline(t)
			drained := time.Since(start)
			var payloads []string
			for range 5 {
				payloads = append(payloads, string(got.next(t).Payload))
			}
			if diff := cmp.Diff(tt.want, payloads); diff != "" {
				t.Errorf("delivered (-want +got):\n%s", diff)
			}
			got.none(t, 100*time.Millisecond)
			// 5 messages at 50 Hz: 4 gaps of 20 ms at least.
			if drained < 80*time.Millisecond {
				t.Errorf("drained 5 messages in %v, faster than 50 Hz", drained)
			}
			t.Logf("reconnect and drain of 5 at 50 Hz took %v", drained)
		})
	}
}

// TestPublishDuringDrainKeepsOrder: a publish made while the queue drains joins its
// tail, so everything arrives in the order it was published.
func TestPublishDuringDrainKeepsOrder(t *testing.T) {
	p, endpoint, observer := proxied(t)
	ctx := t.Context()
	got := newCollector()
	if _, err := observer.Subscribe(ctx, "order/#", got, transport.QoS(1)); err != nil {
		t.Fatal(err)
	}
	fc := newFakeClock()
	ev := newEvents()
	cfg := transport.Config{Endpoint: endpoint, DrainRate: 20}
	ev.hook(&cfg)
	c := newConn(t, cfg, func(c *transport.Conn) { transport.SetClock(c, fc) })
	ev.waitOnline(t)
	p.Cut()
	ev.waitOffline(t)
	w := fc.next(t)
	for i := range 5 {
		if err := c.Publish(ctx, "order/q", fmt.Appendf(nil, "%d", i), transport.QoS(1)); err != nil {
			t.Fatal(err)
		}
	}
	p.Restore()
	fc.fire(w)
	// The first drained message shows the drain has begun; publish more meanwhile.
	if m := got.next(t); string(m.Payload) != "0" {
		t.Fatalf("first = %q", m.Payload)
	}
	for i := 5; i < 8; i++ {
		if err := c.Publish(ctx, "order/q", fmt.Appendf(nil, "%d", i), transport.QoS(1)); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i < 8; i++ {
		if m := got.next(t); string(m.Payload) != fmt.Sprint(i) {
			t.Fatalf("message %d = %q", i, m.Payload)
		}
	}
}

// TestBlackHoleDetected: a connection that stops carrying traffic without closing is
// declared lost by keep-alive within 1.5 × keep-alive, then reconnects.
func TestBlackHoleDetected(t *testing.T) {
	p, endpoint, _ := proxied(t)
	ev := newEvents()
	const keepAlive = time.Second
	cfg := transport.Config{Endpoint: endpoint, KeepAlive: keepAlive, Backoff: transport.ExponentialBackoff(10*time.Millisecond, 10*time.Millisecond, 0)}
	ev.hook(&cfg)
	newConn(t, cfg, nil)
	ev.waitOnline(t)

	p.BlackHole()
	start := time.Now()
	err := ev.waitOffline(t)
	detected := time.Since(start)
	if !errors.Is(err, transport.ErrKeepAlive) {
		t.Errorf("OnOffline(%v), want transport.ErrKeepAlive", err)
	}
	// 1.5 × keep-alive after the last byte received, which is at most now; allow
	// scheduling slack on a loaded machine.
	if limit := keepAlive*3/2 + 500*time.Millisecond; detected > limit {
		t.Errorf("detected after %v, want within %v", detected, limit)
	}
	t.Logf("black hole detected after %v (keep-alive %v)", detected, keepAlive)
	p.Restore()
	ev.waitOnline(t)
}

// TestCloseDuringBackoff: Close returns promptly while the loop waits out a backoff
// that would never end.
func TestCloseDuringBackoff(t *testing.T) {
	p, endpoint, _ := proxied(t)
	p.Cut()
	fc := newFakeClock()
	c, err := transport.New(transport.Config{Endpoint: endpoint})
	if err != nil {
		t.Fatal(err)
	}
	transport.SetClock(c, fc)
	done := make(chan error, 1)
	go func() { done <- c.Start(context.Background()) }()
	fc.next(t) // the first attempt failed; the loop now waits and is never woken
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	start := time.Now()
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Errorf("Start = %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Close took %v", d)
	}
	if err := c.Publish(ctx, "x", nil); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("Publish after Close = %v", err)
	}
	if err := c.AwaitConnection(ctx); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("AwaitConnection after Close = %v", err)
	}
	if err := c.Close(ctx); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

// TestAwaitConnection: AwaitConnection blocks while offline, returns when online,
// and on ctx's end reports the last connect error too.
func TestAwaitConnection(t *testing.T) {
	p, endpoint, _ := proxied(t)
	p.Cut()
	fc := newFakeClock()
	c := newConn(t, transport.Config{Endpoint: endpoint}, func(c *transport.Conn) { transport.SetClock(c, fc) })
	w := fc.next(t)
	short, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	err := c.AwaitConnection(short)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "last attempt") {
		t.Errorf("AwaitConnection = %v; want DeadlineExceeded with the last attempt's error", err)
	}
	p.Restore()
	fc.fire(w)
	ctx, cancel2 := context.WithTimeout(t.Context(), wait)
	defer cancel2()
	if err := c.AwaitConnection(ctx); err != nil {
		t.Fatal(err)
	}
	if !c.IsOnline() {
		t.Error("not online after AwaitConnection")
	}
}
