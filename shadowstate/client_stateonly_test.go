package shadowstate_test

import (
	"context"
	"testing"
	"time"

	"github.com/shadowsync/shadowsync/localiot"
	"github.com/shadowsync/shadowsync/shadowstate"
)

// A StateOnly documents callback gets the current state and version without the
// metadata or the previous state; once a callback wants everything, every callback
// gets everything.
func TestClientDocumentsStateOnly(t *testing.T) {
	srv := startLocalIoT(t, localiot.Options{})
	c := newClient(t, dial(t, srv.Endpoints().Plain, nil), shadowstate.ClientOptions{})
	h := mustShadow(t, c, "Lite-1", "")
	lite := make(chan *shadowstate.DocumentsMessage, 4)
	if _, err := h.OnDocuments(t.Context(), func(_ context.Context, d *shadowstate.DocumentsMessage) { lite <- d }, shadowstate.StateOnly()); err != nil {
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
