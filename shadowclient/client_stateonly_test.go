package shadowclient_test

import (
	"context"
	"testing"
	"time"

	"github.com/shadowsync/shadowsync/internal/testserver"
	"github.com/shadowsync/shadowsync/localiot"
	"github.com/shadowsync/shadowsync/shadowclient"
	"github.com/shadowsync/shadowsync/shadowstate"
	"github.com/shadowsync/shadowsync/transport"
)

// A StateOnly documents callback gets the current state and version without the
// metadata or the previous state; once a callback wants everything, every callback
// gets everything.
func TestClientDocumentsStateOnly(t *testing.T) {
	srv := testserver.Start(t, localiot.Options{})
	c := newClient(t, dial(t, srv.Endpoints().Plain, nil), shadowclient.Options{})
	h := mustShadow(t, c, "Lite-1", "")
	lite := make(chan *shadowstate.DocumentsMessage, 4)
	if _, err := h.OnDocuments(t.Context(), func(_ context.Context, d *shadowstate.DocumentsMessage) { lite <- d }, shadowclient.StateOnly()); err != nil {
		t.Fatal(err)
	}
	next := func(ch chan *shadowstate.DocumentsMessage) *shadowstate.DocumentsMessage {
		t.Helper()
		select {
		case d := <-ch:
			return d
		case <-time.After(wait):
			t.Fatal("no documents message")
			return nil
		}
	}
	for n := 1; n <= 2; n++ {
		if _, err := h.UpdateReported(t.Context(), map[string]any{"n": n}); err != nil {
			t.Fatal(err)
		}
	}
	_ = next(lite) // version 1: created
	d := next(lite)
	if d.Current.Version != 2 || d.Current.State.Reported["n"] == nil || d.Timestamp == 0 || d.ClientToken == "" {
		t.Errorf("state-only message lacks what it promises: %+v", d)
	}
	if d.Current.Metadata.Reported != nil || d.Previous == nil || d.Previous.Version != 1 || d.Previous.State.Reported != nil {
		t.Errorf("state-only message: metadata %v, previous %+v; want no metadata and a previous with only version 1", d.Current.Metadata, d.Previous)
	}

	full := make(chan *shadowstate.DocumentsMessage, 4)
	if _, err := h.OnDocuments(t.Context(), func(_ context.Context, d *shadowstate.DocumentsMessage) { full <- d }); err != nil {
		t.Fatal(err)
	}
	if _, err := h.UpdateReported(t.Context(), map[string]any{"n": 3}); err != nil {
		t.Fatal(err)
	}
	for _, d := range []*shadowstate.DocumentsMessage{next(full), next(lite)} {
		if d.Current.Metadata.Reported["n"] == nil || d.Previous == nil || d.Previous.State.Reported["n"] == nil {
			t.Errorf("with a full callback registered, a message lacks metadata or the previous state: %+v", d)
		}
	}
}

// With QoS0 the client subscribes to its shadow topics at QoS 0, fleet watches
// included, and everything still works.
func TestClientQoS0Subscriptions(t *testing.T) {
	granted := make(chan localiot.Event, 16)
	srv := testserver.Start(t, localiot.Options{Observe: func(e localiot.Event) {
		if e.Kind == localiot.EventSubscribe && e.ClientID == "qos0" {
			granted <- e
		}
	}})
	c := newClient(t, dial(t, srv.Endpoints().Plain, func(cfg *transport.Config) { cfg.ClientID = "qos0" }), shadowclient.Options{QoS0: true})
	deltas := make(chan shadowstate.ID, 4)
	if _, err := c.WatchFleet(t.Context(), shadowclient.FleetWatch{OnDelta: func(_ context.Context, id shadowstate.ID, _ *shadowstate.DeltaMessage) { deltas <- id }}); err != nil {
		t.Fatal(err)
	}
	h := mustShadow(t, c, "QoS0-1", "")
	if _, err := h.UpdateDesired(t.Context(), map[string]any{"on": true}); err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-deltas:
		if id.Thing != "QoS0-1" {
			t.Errorf("delta for %v", id)
		}
	case <-time.After(wait):
		t.Fatal("no delta through the QoS 0 fleet watch")
	}
	seen := 0
	for len(granted) > 0 {
		e := <-granted
		seen += len(e.Filters)
		for i, f := range e.Filters {
			if e.Granted[i] != 0 {
				t.Errorf("%s granted QoS %d, want 0", f, e.Granted[i])
			}
		}
	}
	if seen < 3 { // the fleet's delta filter and the update's two reply filters
		t.Errorf("saw %d filters subscribed, want at least 3", seen)
	}
}
