package shadowclient_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/shadowsync/shadowsync/internal/testserver"
	"github.com/shadowsync/shadowsync/localiot"
	"github.com/shadowsync/shadowsync/shadowclient"
	"github.com/shadowsync/shadowsync/shadowstate"
	"github.com/shadowsync/shadowsync/transport"
)

// TestClientAcrossBrokerRestart stops the broker mid-run: requests fail at once while
// offline, and requests and delta callbacks work again once transport reconnects.
func TestClientAcrossBrokerRestart(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	store := &localiot.MemoryStore{}
	start := func() *localiot.Server {
		return testserver.Start(t, localiot.Options{Plain: &localiot.PlainListener{Addr: addr}, Store: store})
	}
	srv := start()

	online, offline := make(chan struct{}, 4), make(chan struct{}, 4)
	conn := dial(t, "mqtt://"+addr, func(cfg *transport.Config) {
		cfg.Backoff = transport.ExponentialBackoff(20*time.Millisecond, 100*time.Millisecond, 0)
		cfg.OnOnline = func() { online <- struct{}{} }
		cfg.OnOffline = func(error) { offline <- struct{}{} }
	})
	select {
	case <-online:
	case <-time.After(wait):
		t.Fatal("never online")
	}
	device := newClient(t, conn, shadowclient.Options{})
	h := mustShadow(t, device, "Restart-1", "")
	deltas := make(chan int64, 8)
	if _, err := h.OnDelta(t.Context(), func(_ context.Context, d *shadowstate.DeltaMessage) { deltas <- d.Version }); err != nil {
		t.Fatal(err)
	}
	if _, err := h.UpdateReported(t.Context(), map[string]any{"v": 1}); err != nil {
		t.Fatal(err)
	}

	testserver.Stop(t, srv)
	select {
	case <-offline:
	case <-time.After(wait):
		t.Fatal("never offline")
	}
	if _, err := h.Get(t.Context()); !errors.Is(err, shadowclient.ErrOffline) {
		t.Fatalf("get while the broker is down: %v", err)
	}

	start()
	select {
	case <-online:
	case <-time.After(wait):
		t.Fatal("never back online")
	}
	doc, err := h.Get(t.Context())
	if err != nil || doc.Version != 1 {
		t.Fatalf("get after the restart: %+v, %v", doc, err)
	}
	app := newClient(t, dial(t, "mqtt://"+addr, nil), shadowclient.Options{})
	ah := mustShadow(t, app, "Restart-1", "")
	acc, err := ah.UpdateDesired(t.Context(), map[string]any{"v": 2})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case v := <-deltas:
		if v != acc.Version {
			t.Fatalf("delta version %d, want %d", v, acc.Version)
		}
	case <-time.After(wait):
		t.Fatal("the delta subscription did not come back after the reconnect")
	}
}
