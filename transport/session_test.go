package transport_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shadowsync/shadowsync/internal/faultproxy"
	"github.com/shadowsync/shadowsync/internal/mosquitto"
	"github.com/shadowsync/shadowsync/internal/testserver"
	"github.com/shadowsync/shadowsync/localiot"
	"github.com/shadowsync/shadowsync/transport"
)

// subscribeLog records the SUBSCRIBE and UNSUBSCRIBE filters one client ID sends, as
// the broker saw them.
type subscribeLog struct {
	id  string
	mu  sync.Mutex
	sub []string
	uns []string
}

func (l *subscribeLog) observe(e localiot.Event) {
	if e.ClientID != l.id {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	switch e.Kind {
	case localiot.EventSubscribe:
		l.sub = append(l.sub, e.Filters...)
	case localiot.EventUnsubscribe:
		l.uns = append(l.uns, e.Filters...)
	}
}

func (l *subscribeLog) filters() (sub, uns []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.sub), slices.Clone(l.uns)
}

// A persistent session resumed by the server delivers what was published to its
// filters while the client was away, keeps the filters the server still holds without
// subscribing them again, and sends only what changed while offline: the SUBSCRIBE of
// a filter added and the UNSUBSCRIBE of one removed.
func TestPersistentSessionResumes(t *testing.T) {
	log := &subscribeLog{id: "keeper"}
	srv := testserver.Start(t, localiot.Options{Observe: log.observe})
	proxy, err := faultproxy.Start(strings.TrimPrefix(srv.Endpoints().Plain, "mqtt://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })

	ev := newEvents()
	cfg := transport.Config{Endpoint: "mqtt://" + proxy.Addr(), ClientID: "keeper", PersistentSession: true, Backoff: transport.ExponentialBackoff(50*time.Millisecond, 50*time.Millisecond, 0)}
	ev.hook(&cfg)
	c := newConn(t, cfg, nil)
	ev.waitOnline(t)
	news, old, fresh := newCollector(), newCollector(), newCollector()
	ctx := t.Context()
	if _, err := c.Subscribe(ctx, "news/#", news, transport.QoS(1)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Subscribe(ctx, "old/#", old, transport.QoS(1)); err != nil {
		t.Fatal(err)
	}
	pub := dialConn(t, transport.Config{Endpoint: srv.Endpoints().Plain, ClientID: "publisher"})

	proxy.Cut()
	if err := ev.waitOffline(t); err == nil {
		t.Fatal("OnOffline got no cause")
	}
	if err := c.Unsubscribe(ctx, "old/#"); err != nil {
		t.Fatalf("Unsubscribe while offline: %v", err)
	}
	if _, err := c.Subscribe(ctx, "fresh/#", fresh, transport.QoS(1)); err != nil {
		t.Fatalf("Subscribe while offline: %v", err)
	}
	for i := range 3 {
		if err := pub.Publish(ctx, "news/today", fmt.Appendf(nil, "while away %d", i), transport.QoS(1)); err != nil {
			t.Fatal(err)
		}
	}
	proxy.Restore()
	ev.waitOnline(t)

	// Neither AWS IoT nor localiot promises the order of what a session queued.
	var away []string
	for range 3 {
		away = append(away, string(news.next(t).Payload))
	}
	slices.Sort(away)
	if want := []string{"while away 0", "while away 1", "while away 2"}; !slices.Equal(away, want) {
		t.Errorf("messages after the reconnect = %q, want %q", away, want)
	}
	sub, uns := log.filters()
	if want := []string{"news/#", "old/#", "fresh/#"}; !slices.Equal(sub, want) {
		t.Errorf("SUBSCRIBEs the broker saw = %q, want %q: news/# is kept by the session", sub, want)
	}
	if want := []string{"old/#"}; !slices.Equal(uns, want) {
		t.Errorf("UNSUBSCRIBEs the broker saw = %q, want %q", uns, want)
	}
	for _, topic := range []string{"old/x", "fresh/x"} {
		if err := pub.Publish(ctx, topic, []byte(topic), transport.QoS(1)); err != nil {
			t.Fatal(err)
		}
	}
	if got := fresh.next(t); string(got.Payload) != "fresh/x" {
		t.Errorf("fresh/# got %q", got.Payload)
	}
	old.none(t, 200*time.Millisecond)
}

// A session the server no longer has (here: a new server on the same address) is
// rebuilt: the client subscribes every filter again and receives what is published.
func TestPersistentSessionLostIsRebuilt(t *testing.T) {
	first := testserver.Start(t, localiot.Options{})
	addr := strings.TrimPrefix(first.Endpoints().Plain, "mqtt://")
	ev := newEvents()
	cfg := transport.Config{Endpoint: first.Endpoints().Plain, ClientID: "keeper", PersistentSession: true, Backoff: transport.ExponentialBackoff(50*time.Millisecond, 50*time.Millisecond, 0)}
	ev.hook(&cfg)
	c := newConn(t, cfg, nil)
	ev.waitOnline(t)
	got := newCollector()
	if _, err := c.Subscribe(t.Context(), "news/#", got, transport.QoS(1)); err != nil {
		t.Fatal(err)
	}
	testserver.Stop(t, first)
	_ = ev.waitOffline(t)

	log := &subscribeLog{id: "keeper"}
	second := testserver.Start(t, localiot.Options{Plain: &localiot.PlainListener{Addr: addr}, Observe: log.observe})
	ev.waitOnline(t)
	if sub, _ := log.filters(); !slices.Equal(sub, []string{"news/#"}) {
		t.Errorf("SUBSCRIBEs on the new server = %q, want news/#", sub)
	}
	pub := dialConn(t, transport.Config{Endpoint: second.Endpoints().Plain, ClientID: "publisher"})
	if err := pub.Publish(t.Context(), "news/x", []byte("after"), transport.QoS(1)); err != nil {
		t.Fatal(err)
	}
	if m := got.next(t); string(m.Payload) != "after" {
		t.Errorf("got %q, want after", m.Payload)
	}
}

// Debian's mosquitto keeps a persistent session too: what is published while the
// client is away arrives after it reconnects.
func TestPersistentSessionOnMosquitto(t *testing.T) {
	addr := mosquitto.Start(t)
	cfg := transport.Config{Endpoint: "mqtt://" + addr, ClientID: "keeper", PersistentSession: true}
	first := dialConn(t, cfg)
	if _, err := first.Subscribe(t.Context(), "news/#", newCollector(), transport.QoS(1)); err != nil {
		t.Fatal(err)
	}
	closeCtx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := first.Close(closeCtx); err != nil {
		t.Fatal(err)
	}
	pub := dialConn(t, transport.Config{Endpoint: "mqtt://" + addr, ClientID: "publisher"})
	if err := pub.Publish(t.Context(), "news/x", []byte("while away"), transport.QoS(1)); err != nil {
		t.Fatal(err)
	}

	// The filter is registered before Start, as a program that restarts would, so the
	// queued message has a handler as soon as the session resumes.
	got := newCollector()
	newConn(t, cfg, func(c *transport.Conn) {
		if _, err := c.Subscribe(t.Context(), "news/#", got, transport.QoS(1)); err != nil {
			t.Fatal(err)
		}
	})
	if m := got.next(t); string(m.Payload) != "while away" {
		t.Errorf("got %q, want the message published while away", m.Payload)
	}
}

func TestPersistentSessionNeedsAClientID(t *testing.T) {
	_, err := transport.New(transport.Config{PersistentSession: true})
	if !errors.Is(err, transport.ErrInvalidConfig) || !strings.Contains(err.Error(), "ClientID") {
		t.Errorf("New(PersistentSession, no ClientID) = %v, want ErrInvalidConfig naming ClientID", err)
	}
}
