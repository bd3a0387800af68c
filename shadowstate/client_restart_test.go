package shadowstate_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/shadowsync/shadowsync/localiot"
	"github.com/shadowsync/shadowsync/shadowstate"
	"github.com/shadowsync/shadowsync/transport"
)

func TestClientDeltaOnlyForDifferingKeys(t *testing.T) {
	srv := startLocalIoT(t, localiot.Options{})
	c := newClient(t, dial(t, srv.Endpoints().Plain, nil), shadowstate.ClientOptions{})
	h := mustShadow(t, c, "Diff-1", "")
	ctx := t.Context()
	deltas := make(chan *shadowstate.DeltaMessage, 8)
	if _, err := h.OnDelta(ctx, func(_ context.Context, d *shadowstate.DeltaMessage) { deltas <- d }); err != nil {
		t.Fatal(err)
	}
	next := func() *shadowstate.DeltaMessage {
		t.Helper()
		select {
		case d := <-deltas:
			return d
		case <-time.After(wait):
			t.Fatal("no delta")
		}
		return nil
	}
	if _, err := h.UpdateReported(ctx, map[string]any{"a": 1, "b": 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.UpdateDesired(ctx, map[string]any{"a": 1, "b": 2}); err != nil {
		t.Fatal(err)
	}
	if d := next(); fmt.Sprint(d.State) != "map[b:2]" || d.Version != 2 {
		t.Fatalf("delta %v at version %d, want only b at version 2", d.State, d.Version)
	}
	if _, err := h.UpdateReported(ctx, map[string]any{"b": 2}); err != nil { // caught up: no delta
		t.Fatal(err)
	}
	acc, err := h.UpdateDesired(ctx, map[string]any{"c": 3}) // the next delta must be this one
	if err != nil {
		t.Fatal(err)
	}
	if d := next(); fmt.Sprint(d.State) != "map[c:3]" || d.Version != acc.Version {
		t.Fatalf("after catching up, delta %v at version %d, want only c at %d", d.State, d.Version, acc.Version)
	}
}

// TestClientSubscriptionTraffic asserts what the broker sees: a persistent client
// subscribes to an operation's replies once, a per-request client around each request.
func TestClientSubscriptionTraffic(t *testing.T) {
	var mu sync.Mutex
	traffic := map[string][]string{}
	srv := startLocalIoT(t, localiot.Options{Observe: func(e localiot.Event) {
		if e.Kind != localiot.EventSubscribe && e.Kind != localiot.EventUnsubscribe {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		for _, f := range e.Filters {
			traffic[e.ClientID] = append(traffic[e.ClientID], string(e.Kind)+" "+f)
		}
	}})
	run := func(id string, mode shadowstate.Subscriptions) []string {
		conn := dial(t, srv.Endpoints().Plain, func(cfg *transport.Config) { cfg.ClientID = id })
		c := newClient(t, conn, shadowstate.ClientOptions{Subscriptions: mode})
		h := mustShadow(t, c, "Traffic-1", "")
		for i := range 3 {
			if _, err := h.UpdateReported(t.Context(), map[string]any{"n": i}); err != nil {
				t.Fatal(err)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		got := slices.Clone(traffic[id])
		slices.Sort(got)
		return got
	}
	acc, rej := "$aws/things/Traffic-1/shadow/update/accepted", "$aws/things/Traffic-1/shadow/update/rejected"
	if got, want := run("persistent-client", shadowstate.Persistent), []string{"subscribe " + acc, "subscribe " + rej}; !slices.Equal(got, want) {
		t.Errorf("persistent client traffic %v, want %v", got, want)
	}
	var want []string
	for range 3 {
		want = append(want, "subscribe "+acc, "subscribe "+rej, "unsubscribe "+acc, "unsubscribe "+rej)
	}
	slices.Sort(want)
	if got := run("per-request-client", shadowstate.PerRequest); !slices.Equal(got, want) {
		t.Errorf("per-request client traffic %v, want %v", got, want)
	}
}

func TestClientHundredShadowsConcurrently(t *testing.T) {
	srv := startLocalIoT(t, localiot.Options{})
	c := newClient(t, dial(t, srv.Endpoints().Plain, nil), shadowstate.ClientOptions{})
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 100 {
		wg.Go(func() {
			thing := fmt.Sprintf("Par-%03d", i)
			h, _ := c.Shadow(thing, "")
			acc, err := h.UpdateReported(t.Context(), map[string]any{"thing": thing})
			if err != nil {
				errs <- err
				return
			}
			if got := acc.State.(map[string]any)["reported"].(map[string]any)["thing"]; got != thing || acc.Version != 1 {
				errs <- fmt.Errorf("%s got the reply %v version %d", thing, got, acc.Version)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

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
	start := func() (stop func()) {
		srv, err := localiot.New(localiot.Options{Plain: &localiot.PlainListener{Addr: addr}, Store: store})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- srv.Start(ctx) }()
		select {
		case <-srv.Ready():
		case err := <-done:
			t.Fatalf("localiot on %s: %v", addr, err)
		}
		return func() { cancel(); <-done }
	}
	stop := start()

	online, offline := make(chan struct{}, 4), make(chan struct{}, 4)
	conn := dial(t, "mqtt://"+addr, func(cfg *transport.Config) {
		cfg.Backoff = transport.ExponentialBackoff(20*time.Millisecond, 100*time.Millisecond, 0)
		cfg.OnOnline = func() { online <- struct{}{} }
		cfg.OnOffline = func(error) { offline <- struct{}{} }
	})
	<-online
	device := newClient(t, conn, shadowstate.ClientOptions{})
	h := mustShadow(t, device, "Restart-1", "")
	deltas := make(chan int64, 8)
	if _, err := h.OnDelta(t.Context(), func(_ context.Context, d *shadowstate.DeltaMessage) { deltas <- d.Version }); err != nil {
		t.Fatal(err)
	}
	if _, err := h.UpdateReported(t.Context(), map[string]any{"v": 1}); err != nil {
		t.Fatal(err)
	}

	stop()
	select {
	case <-offline:
	case <-time.After(wait):
		t.Fatal("never offline")
	}
	if _, err := h.Get(t.Context()); !errors.Is(err, shadowstate.ErrOffline) {
		t.Fatalf("get while the broker is down: %v", err)
	}

	stop = start()
	defer stop()
	select {
	case <-online:
	case <-time.After(wait):
		t.Fatal("never back online")
	}
	doc, err := h.Get(t.Context())
	if err != nil || doc.Version != 1 {
		t.Fatalf("get after the restart: %+v, %v", doc, err)
	}
	app := newClient(t, dial(t, "mqtt://"+addr, nil), shadowstate.ClientOptions{})
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

func TestClientForgetKeepsHandlesWithCallbacks(t *testing.T) {
	srv := startLocalIoT(t, localiot.Options{})
	c := newClient(t, dial(t, srv.Endpoints().Plain, nil), shadowstate.ClientOptions{})
	idle := mustShadow(t, c, "Idle-1", "")
	c.Forget("Idle-1", "")
	if again := mustShadow(t, c, "Idle-1", ""); again == idle {
		t.Error("Forget kept a handle without callbacks")
	}
	watched := mustShadow(t, c, "Watched-1", "")
	if _, err := watched.OnDelta(t.Context(), func(context.Context, *shadowstate.DeltaMessage) {}); err != nil {
		t.Fatal(err)
	}
	c.Forget("Watched-1", "")
	if again := mustShadow(t, c, "Watched-1", ""); again != watched {
		t.Error("Forget dropped a handle whose callbacks still need it")
	}
}
