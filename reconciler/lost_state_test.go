package reconciler_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shadowsync/shadowsync/internal/mosquitto"
	"github.com/shadowsync/shadowsync/internal/testserver"
	"github.com/shadowsync/shadowsync/localiot"
	"github.com/shadowsync/shadowsync/reconciler"
	"github.com/shadowsync/shadowsync/shadowclient"
	"github.com/shadowsync/shadowsync/shadowstate"
)

// targetDevice registers a device that applies desired target and reports it.
func targetDevice(t *testing.T, m *reconciler.Manager, thing string) {
	t.Helper()
	_, err := reconciler.Register(m, reconciler.ControllerOptions{Things: []string{thing}},
		reconciler.ReconcilerFunc[bigDev](func(_ context.Context, req reconciler.Request[bigDev]) (reconciler.Result, error) {
			req.Reported.Target = req.Desired.Target
			return reconciler.Result{}, nil
		}))
	if err != nil {
		t.Fatal(err)
	}
}

// convergeTo sets desired target on h and waits until reported (read through h)
// follows.
func convergeTo(t *testing.T, h *shadowclient.Handle, target int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	for {
		_, err := h.UpdateDesired(ctx, map[string]any{"target": target})
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("desire target %d: %v", target, err)
		}
		select { // the app's own connection may still be coming back
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
	eventually(t, wait, func() error {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		doc, err := h.Get(ctx)
		if err != nil {
			return err
		}
		if got := fmt.Sprint(doc.State.Reported["target"]); got != fmt.Sprint(target) {
			return fmt.Errorf("reported target %s, desired %d (version %d)", got, target, doc.Version)
		}
		return nil
	})
}

// A server that lost its state (localiot in memory, killed and started again: every
// shadow back at version 1) must be reconciled against: after the reconnect, the
// re-read is the truth whatever its version, and later desired updates count.
func TestServerThatLostItsStateIsReconciledAgainst(t *testing.T) {
	srv1 := testserver.Start(t, localiot.Options{})
	addr := strings.TrimPrefix(srv1.Endpoints().Plain, "mqtt://")

	m, err := reconciler.NewManager(fastConfig(srv1.Endpoints().Plain), reconciler.Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	targetDevice(t, m, "lost-1")
	run(t, m)
	h := shadow(t, app(t, srv1.Endpoints().Plain), "lost-1")
	for i := range 10 {
		convergeTo(t, h, 100+i)
	}

	testserver.Stop(t, srv1)
	eventually(t, wait, func() error {
		if m.Conn().IsOnline() {
			return fmt.Errorf("the device has not noticed the server stopped")
		}
		return nil
	})
	// The new server's shadow already exists, at version 1 with a new desired state,
	// when the device comes back: an app set it elsewhere before the server took this
	// address (so the device's re-read surely finds it).
	store := &localiot.MemoryStore{}
	pre := testserver.Start(t, localiot.Options{Store: store})
	if _, err := shadow(t, app(t, pre.Endpoints().Plain), "lost-1").UpdateDesired(t.Context(), map[string]any{"target": 7}); err != nil {
		t.Fatal(err)
	}
	testserver.Stop(t, pre)
	srv2 := testserver.Start(t, localiot.Options{Plain: &localiot.PlainListener{Addr: addr}, Store: store})
	if srv2.Endpoints().Plain != srv1.Endpoints().Plain {
		t.Fatalf("second server on %s, want %s", srv2.Endpoints().Plain, srv1.Endpoints().Plain)
	}
	h2 := shadow(t, app(t, srv2.Endpoints().Plain), "lost-1")
	eventually(t, wait, func() error {
		r, err := reportedOf(srv2, "lost-1")
		if err != nil || fmt.Sprint(r["target"]) != "7" {
			return fmt.Errorf("the device did not reconcile the new server's shadow: reported %v (%v)", r, err)
		}
		return nil
	})
	for i := range 10 {
		convergeTo(t, h2, 200+i)
	}
	if n := counterValue(t, m.Registry(), "shadowsync_shadow_version_backwards_total"); n != 1 {
		t.Errorf("shadowsync_shadow_version_backwards_total = %v, want 1 (one shadow went back once)", n)
	}
}

// The same when only the shadow service went back in time — it runs as a client of
// mosquitto and is restarted from an older copy of its store (a backup restored) while
// the device stays connected to the broker — so that versions go backwards through
// deltas and documents messages alone, with no reconnect and no re-created shadow.
func TestShadowServiceRestoredFromBackupIsReconciledAgainst(t *testing.T) {
	broker := "mqtt://" + mosquitto.Start(t)
	startService := func(store localiot.Store) *localiot.BrokerShadowService {
		return testserver.StartShadowService(t, localiot.BrokerShadowOptions{Broker: broker, Store: store})
	}
	store := &localiot.MemoryStore{}
	svc := startService(store)

	m, err := reconciler.NewManager(fastConfig(broker), reconciler.Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	targetDevice(t, m, "lost-2")
	run(t, m)
	h := shadow(t, app(t, broker), "lost-2")
	backup := &localiot.MemoryStore{}
	for i := range 10 {
		convergeTo(t, h, 100+i)
		if i == 2 {
			s, err := store.Load(shadowstate.ID{Thing: "lost-2"})
			if err != nil {
				t.Fatal(err)
			}
			if err := backup.Save(s); err != nil {
				t.Fatal(err)
			}
		}
	}
	before, err := h.Get(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	testserver.Stop(t, svc)
	startService(backup)
	acc, err := h.UpdateDesired(t.Context(), map[string]any{"target": 7})
	if err != nil {
		t.Fatal(err)
	}
	if acc.Version >= before.Version {
		t.Fatalf("the restored service is at version %d, not behind %d: the test needs versions to go backwards", acc.Version, before.Version)
	}
	convergeTo(t, h, 7)
	for i := range 10 {
		convergeTo(t, h, 200+i)
	}
}
