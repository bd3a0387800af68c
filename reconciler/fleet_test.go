package reconciler_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shadowsync/shadowsync/internal/testserver"
	"github.com/shadowsync/shadowsync/localiot"
	"github.com/shadowsync/shadowsync/reconciler"
	"github.com/shadowsync/shadowsync/shadowstate"
)

// TestFleetSharedByTwoManagers: two managers in one shared-subscription group manage
// every thing with a prefix, discovered from events; each delta is handled by one of
// them, things outside the prefix are left alone, and every thing converges — also
// when the members keep persistent sessions and acknowledge each event after its
// reconcile (with a bound on held events below the burst, so some are acknowledged
// early).
func TestFleetSharedByTwoManagers(t *testing.T) {
	t.Run("clean", func(t *testing.T) { testFleetShared(t, false) })
	t.Run("persistent", func(t *testing.T) { testFleetShared(t, true) })
}

func testFleetShared(t *testing.T, persistent bool) {
	srv := testserver.Start(t, localiot.Options{})
	const n = 200
	var handled [2]atomic.Int64
	for i := range handled {
		cfg := fastConfig(srv.Endpoints().Plain)
		if persistent {
			cfg.PersistentSession, cfg.ClientID = true, fmt.Sprintf("member-%d", i)
		}
		m, err := reconciler.NewManager(cfg, reconciler.Options{Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		_, err = reconciler.Register(m, reconciler.ControllerOptions{
			Name:                    "fleet",
			Fleet:                   &reconciler.Fleet{Prefix: "fl-", Group: "echoers", MaxShadows: 150, PersistentSession: persistent, MaxUnacked: 16},
			MaxConcurrentReconciles: 4,
		}, reconciler.ReconcilerFunc[shadowstate.Object](func(_ context.Context, req reconciler.Request[shadowstate.Object]) (reconciler.Result, error) {
			handled[i].Add(1)
			*req.Reported = shadowstate.Merge(*req.Reported, req.Delta)
			return reconciler.Result{}, nil
		}))
		if err != nil {
			t.Fatal(err)
		}
		run(t, m)
		if err := m.Conn().AwaitConnection(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	c := app(t, srv.Endpoints().Plain)
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if _, err := shadow(t, c, fmt.Sprintf("fl-%03d", i)).UpdateDesired(t.Context(), map[string]any{"n": i}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if _, err := shadow(t, c, "other-1").UpdateDesired(t.Context(), map[string]any{"n": 1}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() error {
		for i := range n {
			thing := fmt.Sprintf("fl-%03d", i)
			r, _ := reportedOf(srv, thing)
			if fmt.Sprint(r["n"]) != fmt.Sprint(i) {
				return fmt.Errorf("%s reported %v", thing, r)
			}
		}
		return nil
	})
	if handled[0].Load() == 0 || handled[1].Load() == 0 {
		t.Errorf("the group did not share the fleet: reconciles %d and %d", handled[0].Load(), handled[1].Load())
	}
	if r, _ := reportedOf(srv, "other-1"); r != nil {
		t.Errorf("a thing outside the prefix was reconciled: %v", r)
	}
}

func TestFleetOptionsErrors(t *testing.T) {
	m, _ := reconciler.NewManager(fastConfig("mqtt://127.0.0.1:1"), reconciler.Options{})
	noop := reconciler.ReconcilerFunc[shadowstate.Object](func(context.Context, reconciler.Request[shadowstate.Object]) (reconciler.Result, error) {
		return reconciler.Result{}, nil
	})
	for _, opts := range []reconciler.ControllerOptions{
		{Things: []string{"a"}, Fleet: &reconciler.Fleet{}},
		{Fleet: &reconciler.Fleet{Group: "a/b"}},
		{Fleet: &reconciler.Fleet{MaxShadows: -1}},
		{Fleet: &reconciler.Fleet{MaxUnacked: -1}},
		// The manager's connection keeps no persistent session.
		{Fleet: &reconciler.Fleet{PersistentSession: true}},
	} {
		if _, err := reconciler.Register(m, opts, noop); err == nil {
			t.Errorf("Register accepted %+v", opts)
		}
	}
}
