package reconciler_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/shadowsync/shadowsync/internal/testserver"
	"github.com/shadowsync/shadowsync/localiot"
	"github.com/shadowsync/shadowsync/reconciler"
)

// A gateway's sub-devices come and go: things added to a running controller are
// read, reconciled and followed; a removed thing is left alone, once a reconcile of it
// that was running has finished.
func TestControllerAddAndRemoveThings(t *testing.T) {
	srv := testserver.Start(t, localiot.Options{})
	m, err := reconciler.NewManager(fastConfig(srv.Endpoints().Plain), reconciler.Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	hold := make(chan struct{})    // a reconcile of "gw-held" waits on it
	holding := make(chan struct{}) // closed when it does
	var holdOnce sync.Once
	ctrl, err := reconciler.Register(m, reconciler.ControllerOptions{Things: []string{"gw-a"}},
		reconciler.ReconcilerFunc[bigDev](func(ctx context.Context, req reconciler.Request[bigDev]) (reconciler.Result, error) {
			if req.Thing == "gw-held" && req.Desired.Target == 99 {
				holdOnce.Do(func() { close(holding) })
				select {
				case <-hold:
				case <-ctx.Done():
				}
			}
			req.Reported.Target = req.Desired.Target
			return reconciler.Result{}, nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	// Before the manager starts, AddThing only lists the thing.
	if err := ctrl.AddThing(t.Context(), "gw-early"); err != nil {
		t.Fatal(err)
	}
	run(t, m)
	appClient := app(t, srv.Endpoints().Plain)
	converges := func(thing string, v int) {
		t.Helper()
		eventually(t, wait, func() error {
			r, err := reportedOf(srv, thing)
			if err != nil || fmt.Sprint(r["target"]) != fmt.Sprint(v) {
				return fmt.Errorf("%s: reported %v (%v), want target %d", thing, r, err, v)
			}
			return nil
		})
	}
	for _, th := range []string{"gw-a", "gw-early"} {
		if _, err := shadow(t, appClient, th).UpdateDesired(t.Context(), map[string]any{"target": 1}); err != nil {
			t.Fatal(err)
		}
		converges(th, 1)
	}

	// Desired state set before the thing is added is reconciled when it is added, and
	// later changes are followed.
	hb := shadow(t, appClient, "gw-b")
	if _, err := hb.UpdateDesired(t.Context(), map[string]any{"target": 5}); err != nil {
		t.Fatal(err)
	}
	if err := ctrl.AddThing(t.Context(), "gw-b"); err != nil {
		t.Fatal(err)
	}
	converges("gw-b", 5)
	if _, err := hb.UpdateDesired(t.Context(), map[string]any{"target": 6}); err != nil {
		t.Fatal(err)
	}
	converges("gw-b", 6)

	// A removed thing is no longer reconciled; the others still are.
	if err := ctrl.RemoveThing(t.Context(), "gw-a"); err != nil {
		t.Fatal(err)
	}
	if _, err := shadow(t, appClient, "gw-a").UpdateDesired(t.Context(), map[string]any{"target": 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := hb.UpdateDesired(t.Context(), map[string]any{"target": 7}); err != nil {
		t.Fatal(err)
	}
	converges("gw-b", 7) // the update to gw-a was made first: its events have arrived
	consistently(t, 300*time.Millisecond, func() error {
		r, err := reportedOf(srv, "gw-a")
		if err != nil || fmt.Sprint(r["target"]) != "1" {
			return fmt.Errorf("removed thing gw-a was reconciled: reported %v (%v)", r, err)
		}
		return nil
	})
	if err := ctrl.Report(t.Context(), "gw-a", func(d *bigDev) { d.Target = 3 }); err == nil {
		t.Error("Report on a removed thing succeeded")
	}

	// RemoveThing waits for a reconcile of the thing that is running.
	if err := ctrl.AddThing(t.Context(), "gw-held"); err != nil {
		t.Fatal(err)
	}
	if _, err := shadow(t, appClient, "gw-held").UpdateDesired(t.Context(), map[string]any{"target": 99}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-holding:
	case <-time.After(wait):
		t.Fatal("the reconcile of gw-held never started")
	}
	removed := make(chan error, 1)
	go func() { removed <- ctrl.RemoveThing(t.Context(), "gw-held") }()
	select {
	case err := <-removed:
		t.Fatalf("RemoveThing returned while the thing's reconcile was running: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(hold)
	select {
	case err := <-removed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(wait):
		t.Fatal("RemoveThing did not return after the reconcile finished")
	}
	// The reconcile that was running wrote its report; nothing after it.
	converges("gw-held", 99)

	// Bad input gets a clear error.
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"gw-b", ctrl.AddThing(t.Context(), "gw-b")},
		{"bad/name", ctrl.AddThing(t.Context(), "bad/name")},
		{"gw-unknown", ctrl.RemoveThing(t.Context(), "gw-unknown")},
		{"gw-a (removed)", ctrl.RemoveThing(t.Context(), "gw-a")},
	} {
		if tc.err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}

// Fleet controllers discover their things; adding or removing one is refused.
func TestFleetControllerRefusesAddThing(t *testing.T) {
	m, err := reconciler.NewManager(fastConfig("mqtt://127.0.0.1:1"), reconciler.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctrl, err := reconciler.Register(m, reconciler.ControllerOptions{Fleet: &reconciler.Fleet{Prefix: "f-"}},
		reconciler.ReconcilerFunc[bigDev](func(context.Context, reconciler.Request[bigDev]) (reconciler.Result, error) {
			return reconciler.Result{}, nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	if err := ctrl.AddThing(t.Context(), "f-1"); !errors.Is(err, reconciler.ErrFleetThings) {
		t.Errorf("AddThing on a fleet controller: %v, want ErrFleetThings", err)
	}
	if err := ctrl.RemoveThing(t.Context(), "f-1"); !errors.Is(err, reconciler.ErrFleetThings) {
		t.Errorf("RemoveThing on a fleet controller: %v, want ErrFleetThings", err)
	}
}
