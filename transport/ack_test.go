package transport_test

import (
	"strings"
	"testing"
	"time"

	"github.com/shadowsync/shadowsync/internal/faultproxy"
	"github.com/shadowsync/shadowsync/internal/testserver"
	"github.com/shadowsync/shadowsync/localiot"
	"github.com/shadowsync/shadowsync/transport"
)

// A QoS 1 message whose ManualAck handler has not acked it when the connection is
// lost comes back, flagged Duplicate, when the persistent session resumes; one it
// acked does not, nor does one of a subscription without ManualAck, which the Conn
// acked on arrival. Acking the first copy after the loss does nothing.
func TestManualAckRedeliveredOnResumedSession(t *testing.T) {
	srv := testserver.Start(t, localiot.Options{})
	proxy, err := faultproxy.Start(strings.TrimPrefix(srv.Endpoints().Plain, "mqtt://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })

	ev := newEvents()
	cfg := transport.Config{Endpoint: "mqtt://" + proxy.Addr(), ClientID: "acker", PersistentSession: true, Backoff: transport.ExponentialBackoff(50*time.Millisecond, 50*time.Millisecond, 0)}
	ev.hook(&cfg)
	c := newConn(t, cfg, nil)
	ev.waitOnline(t)
	ctx := t.Context()
	manual, auto := newCollector(), newCollector()
	if _, err := c.Subscribe(ctx, "work/#", manual, transport.QoS(1), transport.ManualAck()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Subscribe(ctx, "auto/#", auto, transport.QoS(1)); err != nil {
		t.Fatal(err)
	}
	pub := dialConn(t, transport.Config{Endpoint: srv.Endpoints().Plain, ClientID: "publisher"})
	for _, topic := range []string{"work/held", "work/done", "auto/x"} {
		if err := pub.Publish(ctx, topic, []byte(topic), transport.QoS(1)); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]transport.Message{}
	for range 2 {
		m := manual.next(t)
		got[m.Topic] = m
	}
	if m := auto.next(t); m.Topic != "auto/x" {
		t.Fatalf("auto/# got %s", m.Topic)
	}
	held, done := got["work/held"], got["work/done"]
	if held.Topic == "" || done.Topic == "" {
		t.Fatalf("work/# got %v", got)
	}
	done.Ack()
	// paho writes a PUBACK and a SUBSCRIBE in the order they were asked for, and the
	// broker handles a client's packets in order: once this SUBSCRIBE is
	// acknowledged, so is work/done.
	if _, err := c.Subscribe(ctx, "barrier", newCollector(), transport.QoS(1)); err != nil {
		t.Fatal(err)
	}

	proxy.Cut()
	if err := ev.waitOffline(t); err == nil {
		t.Fatal("OnOffline got no cause")
	}
	acked := make(chan struct{})
	go func() { held.Ack(); close(acked) }()
	select {
	case <-acked:
	case <-time.After(wait):
		t.Fatal("Ack of a message whose connection is gone did not return")
	}
	proxy.Restore()
	ev.waitOnline(t)

	// The broker sends what was in flight before anything new.
	again := manual.next(t)
	if again.Topic != "work/held" || !again.Duplicate {
		t.Fatalf("first message after the resume: %s (duplicate %v), want work/held again, flagged duplicate", again.Topic, again.Duplicate)
	}
	again.Ack()
	for _, topic := range []string{"work/after", "auto/after"} {
		if err := pub.Publish(ctx, topic, []byte(topic), transport.QoS(1)); err != nil {
			t.Fatal(err)
		}
	}
	if m := manual.next(t); m.Topic != "work/after" {
		t.Errorf("work/# got %s after the redelivery, want work/after: an acked message came back", m.Topic)
	}
	if m := auto.next(t); m.Topic != "auto/after" {
		t.Errorf("auto/# got %s, want auto/after: a message acked on arrival came back", m.Topic)
	}
}
