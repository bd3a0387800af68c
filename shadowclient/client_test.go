package shadowclient_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/shadowsync/shadowsync/internal/testserver"
	"github.com/shadowsync/shadowsync/localiot"
	"github.com/shadowsync/shadowsync/shadowclient"
	"github.com/shadowsync/shadowsync/shadowstate"
	"github.com/shadowsync/shadowsync/transport"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// wait bounds each step of these tests.
const wait = 10 * time.Second

// eventually polls check until it returns nil, failing the test with its last error
// after timeout.
func eventually(t *testing.T, timeout time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not true after %v: %v", timeout, err)
		}
		time.Sleep(10 * time.Millisecond) // the polling interval of a bounded wait
	}
}

// recv waits for a value on ch and returns it, failing the test as what did not
// happen after wait.
func recv[V any](t *testing.T, ch <-chan V, what string) V {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(wait):
		t.Fatalf("%s within %v", what, wait)
	}
	var zero V
	return zero
}

// dial opens a transport connection for the test.
func dial(t *testing.T, endpoint string, tune func(*transport.Config)) *transport.Conn {
	t.Helper()
	cfg := transport.Config{Endpoint: endpoint, MaxPublishRate: -1}
	if tune != nil {
		tune(&cfg)
	}
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	conn, err := transport.Dial(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if err := conn.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return conn
}

func newClient(t *testing.T, conn *transport.Conn, opts shadowclient.Options) *shadowclient.Client {
	t.Helper()
	c, err := shadowclient.New(conn, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		_ = c.Close(ctx)
	})
	return c
}

func mustShadow(t *testing.T, c *shadowclient.Client, thing, name string) *shadowclient.Handle {
	t.Helper()
	h, err := c.Shadow(thing, name)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestClientGetUpdateDelete(t *testing.T) {
	srv := testserver.Start(t, localiot.Options{})
	c := newClient(t, dial(t, srv.Endpoints().Plain, nil), shadowclient.Options{})
	ctx := t.Context()

	for _, name := range []string{"", "motor"} {
		h := mustShadow(t, c, "Pump-7", name)
		t.Run("shadow "+h.ID().String(), func(t *testing.T) {
			_, err := h.Get(ctx)
			var rej *shadowstate.Error
			if !errors.As(err, &rej) || rej.Code != 404 {
				t.Fatalf("get of a new shadow: %v", err)
			}
			if !strings.Contains(err.Error(), "get "+h.ID().String()) {
				t.Errorf("error %q does not name the operation and shadow", err)
			}

			acc, err := h.UpdateDesired(ctx, map[string]any{"rpm": 1200, "mode": "eco"})
			if err != nil || acc.Version != 1 {
				t.Fatalf("update desired: %+v, %v", acc, err)
			}
			acc, err = h.UpdateReported(ctx, struct {
				RPM int `json:"rpm"`
			}{900}, shadowclient.ExpectVersion(1))
			if err != nil || acc.Version != 2 {
				t.Fatalf("update reported at version 1: %+v, %v", acc, err)
			}
			_, err = h.UpdateReported(ctx, map[string]any{"rpm": 1}, shadowclient.ExpectVersion(1))
			if !errors.As(err, &rej) || rej.Code != 409 || rej.Message != "Version conflict" {
				t.Fatalf("stale version: %v", err)
			}
			doc, err := h.Get(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if doc.Version != 2 || fmt.Sprint(doc.State.Delta) != "map[mode:eco rpm:1200]" || fmt.Sprint(doc.State.Reported) != "map[rpm:900]" {
				t.Fatalf("get: %+v", doc)
			}
			if _, err := h.Update(ctx, shadowstate.StateUpdate{Desired: json.RawMessage(`"on"`)}); !errors.As(err, &rej) || rej.Code != 400 {
				t.Fatalf("invalid update: %v", err)
			}
			del, err := h.Delete(ctx)
			if err != nil || del.Version != 2 {
				t.Fatalf("delete: %+v, %v", del, err)
			}
			if _, err := h.Delete(ctx); !errors.As(err, &rej) || rej.Code != 404 {
				t.Fatalf("second delete: %v", err)
			}
		})
	}
	if _, err := c.Shadow("bad name", ""); !errors.Is(err, shadowstate.ErrInvalidName) {
		t.Errorf("Shadow accepted a bad thing name: %v", err)
	}
	h := mustShadow(t, c, "Pump-7", "")
	if _, err := h.UpdateDesired(ctx, []int{1}); err == nil || !strings.Contains(err.Error(), "must be a JSON object") {
		t.Errorf("an array as desired state: %v", err)
	}
}

func TestClientManyRequestsInFlight(t *testing.T) {
	srv := testserver.Start(t, localiot.Options{})
	c := newClient(t, dial(t, srv.Endpoints().Plain, nil), shadowclient.Options{})
	h := mustShadow(t, c, "Busy-1", "")
	// Another client works on the same shadow at the same time; its replies carry its
	// own tokens and must not be taken for ours.
	other := newClient(t, dial(t, srv.Endpoints().Plain, nil), shadowclient.Options{})
	oh := mustShadow(t, other, "Busy-1", "")

	const n = 40
	var wg sync.WaitGroup
	versions := make(chan int64, 2*n)
	errs := make(chan error, 2*n)
	for i := range n {
		wg.Go(func() {
			acc, err := h.UpdateReported(t.Context(), map[string]any{fmt.Sprintf("k%d", i): i})
			if err != nil {
				errs <- err
				return
			}
			if got := acc.State.(map[string]any)["reported"].(map[string]any); len(got) != 1 || fmt.Sprint(got[fmt.Sprintf("k%d", i)]) != fmt.Sprint(i) {
				errs <- fmt.Errorf("request %d got the reply to another request: %v", i, got)
			}
			versions <- acc.Version
		})
		wg.Go(func() {
			if _, err := oh.Get(t.Context()); err != nil {
				var rej *shadowstate.Error
				if !errors.As(err, &rej) || rej.Code != 404 {
					errs <- fmt.Errorf("other client: %w", err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	close(versions)
	seen := map[int64]bool{}
	for v := range versions {
		if seen[v] {
			t.Errorf("version %d accepted twice", v)
		}
		seen[v] = true
	}
	if len(seen) != n {
		t.Errorf("%d distinct versions, want %d", len(seen), n)
	}
}

func TestClientDeltaAndDocuments(t *testing.T) {
	srv := testserver.Start(t, localiot.Options{})
	device := newClient(t, dial(t, srv.Endpoints().Plain, nil), shadowclient.Options{})
	app := newClient(t, dial(t, srv.Endpoints().Plain, nil), shadowclient.Options{})
	ctx := t.Context()
	dh := mustShadow(t, device, "Lamp-1", "")
	ah := mustShadow(t, app, "Lamp-1", "")

	deltas := make(chan *shadowstate.DeltaMessage, 16)
	reported := make(chan error, 16)
	_, err := dh.OnDelta(ctx, func(ctx context.Context, d *shadowstate.DeltaMessage) {
		deltas <- d
		// A callback may make requests of its own: report what the delta asked for.
		_, err := dh.UpdateReported(ctx, d.State)
		reported <- err
	})
	if err != nil {
		t.Fatal(err)
	}
	docs := make(chan *shadowstate.DocumentsMessage, 16)
	if _, err := ah.OnDocuments(ctx, func(_ context.Context, d *shadowstate.DocumentsMessage) { docs <- d }); err != nil {
		t.Fatal(err)
	}
	panicked := make(chan struct{}, 1)
	if _, err := dh.OnDelta(ctx, func(context.Context, *shadowstate.DeltaMessage) {
		panicked <- struct{}{}
		panic("a broken callback")
	}); err != nil {
		t.Fatal(err)
	}

	if _, err := ah.UpdateDesired(ctx, map[string]any{"on": true}); err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-deltas:
		if d.Version != 1 || fmt.Sprint(d.State) != "map[on:true]" {
			t.Fatalf("delta %+v", d)
		}
	case <-time.After(wait):
		t.Fatal("no delta")
	}
	select {
	case <-panicked:
	case <-time.After(wait):
		t.Fatal("second delta callback not called")
	}
	if err := <-reported; err != nil {
		t.Fatalf("update from inside the delta callback: %v", err)
	}
	// The app sees the device catch up through documents.
	deadline := time.After(wait)
	for {
		select {
		case d := <-docs:
			if d.Current.Version == 2 {
				if fmt.Sprint(d.Current.State.Reported) != "map[on:true]" {
					t.Fatalf("documents after the report: %+v", d.Current)
				}
				return
			}
		case <-deadline:
			t.Fatal("no documents message for the report")
		}
	}
}

func TestClientDeltaWithVersionOfOwnUpdateIsDelivered(t *testing.T) {
	// The AWS IoT Device SDK for Python v1 drops a delta whose version equals one it
	// has seen in an accepted reply. When a client updates desired itself, the accepted
	// reply and the delta carry the same version, and the delta must still arrive.
	srv := testserver.Start(t, localiot.Options{})
	c := newClient(t, dial(t, srv.Endpoints().Plain, nil), shadowclient.Options{})
	h := mustShadow(t, c, "Self-1", "")
	got := make(chan int64, 4)
	if _, err := h.OnDelta(t.Context(), func(_ context.Context, d *shadowstate.DeltaMessage) { got <- d.Version }); err != nil {
		t.Fatal(err)
	}
	acc, err := h.UpdateDesired(t.Context(), map[string]any{"x": 1})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case v := <-got:
		if v != acc.Version {
			t.Fatalf("delta version %d, accepted %d", v, acc.Version)
		}
	case <-time.After(wait):
		t.Fatal("the delta with the version of our own accepted update was dropped")
	}
}

func TestClientThousandShadowsOnOneConnection(t *testing.T) {
	srv := testserver.Start(t, localiot.Options{})
	conn := dial(t, srv.Endpoints().Plain, nil)
	c := newClient(t, conn, shadowclient.Options{})
	app := newClient(t, dial(t, srv.Endpoints().Plain, nil), shadowclient.Options{})
	ctx := t.Context()

	const things = 1000
	var wrong atomic.Int64
	received := make(chan string, things)
	for i := range things {
		thing := fmt.Sprintf("Fleet-%04d", i)
		h := mustShadow(t, c, thing, "")
		if _, err := h.OnDelta(ctx, func(_ context.Context, d *shadowstate.DeltaMessage) {
			if d.State["owner"] != thing {
				wrong.Add(1) // another shadow's delta reached this handle
			}
			received <- thing
		}); err != nil {
			t.Fatalf("watch %s: %v", thing, err)
		}
	}
	// localiot enforces AWS's 50 subscriptions per connection: getting here means the
	// client stayed inside the cap.
	if held := c.HeldFilters(); len(held) > 8 {
		t.Fatalf("client holds %d filters", len(held))
	}

	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for i := range things {
		thing := fmt.Sprintf("Fleet-%04d", i)
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			ah, _ := app.Shadow(thing, "")
			if _, err := ah.UpdateDesired(ctx, map[string]any{"owner": thing}); err != nil {
				t.Errorf("update %s: %v", thing, err)
			}
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	timeout := time.After(30 * time.Second)
	for len(seen) < things {
		select {
		case th := <-received:
			if seen[th] {
				t.Fatalf("%s got its delta twice", th)
			}
			seen[th] = true
		case <-timeout:
			t.Fatalf("deltas for %d of %d shadows after 30s", len(seen), things)
		}
	}
	if n := wrong.Load(); n > 0 {
		t.Fatalf("%d deltas reached the wrong handle", n)
	}
	// Requests on the wildcard filters work too.
	h := mustShadow(t, c, "Fleet-0500", "")
	doc, err := h.Get(ctx)
	if err != nil || doc.State.Desired["owner"] != "Fleet-0500" {
		t.Fatalf("get through the wildcard filters: %+v, %v", doc, err)
	}
}

func TestClientPerRequestSubscriptions(t *testing.T) {
	srv := testserver.Start(t, localiot.Options{})
	conn := dial(t, srv.Endpoints().Plain, nil)
	persistent := newClient(t, conn, shadowclient.Options{Subscriptions: shadowclient.Persistent, Wildcards: shadowclient.WildcardsNever})
	perRequest := newClient(t, dial(t, srv.Endpoints().Plain, nil), shadowclient.Options{Subscriptions: shadowclient.PerRequest, Wildcards: shadowclient.WildcardsNever})
	for _, c := range []*shadowclient.Client{persistent, perRequest} {
		h := mustShadow(t, c, "Sub-1", "")
		if _, err := h.UpdateReported(t.Context(), map[string]any{"a": 1}); err != nil {
			t.Fatal(err)
		}
		if _, err := h.Get(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{
		"$aws/things/Sub-1/shadow/get/accepted", "$aws/things/Sub-1/shadow/get/rejected",
		"$aws/things/Sub-1/shadow/update/accepted", "$aws/things/Sub-1/shadow/update/rejected",
	}
	if got := persistent.HeldFilters(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("persistent client holds %v, want %v", got, want)
	}
	if got := perRequest.HeldFilters(); len(got) != 0 {
		t.Errorf("per-request client still holds %v after its requests", got)
	}
}

func TestClientOfflineFailsAtOnce(t *testing.T) {
	srv := testserver.Start(t, localiot.Options{})
	offline := make(chan struct{}, 1)
	conn := dial(t, srv.Endpoints().Plain, func(cfg *transport.Config) {
		cfg.OnOffline = func(error) { offline <- struct{}{} }
	})
	c := newClient(t, conn, shadowclient.Options{})
	h := mustShadow(t, c, "Away-1", "")
	if _, err := h.UpdateReported(t.Context(), map[string]any{"a": 1}); err != nil {
		t.Fatal(err)
	}
	testserver.Stop(t, srv)
	select {
	case <-offline:
	case <-time.After(wait):
		t.Fatal("connection never went offline")
	}
	_, err := h.UpdateReported(t.Context(), map[string]any{"a": 2})
	if !errors.Is(err, shadowclient.ErrOffline) || !strings.Contains(err.Error(), "update Away-1") {
		t.Fatalf("update while offline: %v", err)
	}
	if conn.Queued() != 0 {
		t.Errorf("a shadow request entered the offline queue")
	}
}

func TestNewClientRefusesBadOptions(t *testing.T) {
	conn, err := transport.New(transport.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, opts := range []shadowclient.Options{
		{Subscriptions: 7}, {Wildcards: 9}, {FilterBudget: -1}, {Timeout: -time.Second},
	} {
		if _, err := shadowclient.New(conn, opts); err == nil {
			t.Errorf("NewClient accepted %+v", opts)
		}
	}
	if _, err := shadowclient.New(nil, shadowclient.Options{}); err == nil {
		t.Error("NewClient accepted a nil connection")
	}
	_ = conn.Close(t.Context())
}

func TestClientDeltaOnlyForDifferingKeys(t *testing.T) {
	srv := testserver.Start(t, localiot.Options{})
	c := newClient(t, dial(t, srv.Endpoints().Plain, nil), shadowclient.Options{})
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

func TestClientHundredShadowsConcurrently(t *testing.T) {
	srv := testserver.Start(t, localiot.Options{})
	c := newClient(t, dial(t, srv.Endpoints().Plain, nil), shadowclient.Options{})
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

func TestClientForgetKeepsHandlesWithCallbacks(t *testing.T) {
	srv := testserver.Start(t, localiot.Options{})
	c := newClient(t, dial(t, srv.Endpoints().Plain, nil), shadowclient.Options{})
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
