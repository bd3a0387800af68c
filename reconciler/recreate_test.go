package reconciler_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/shadowsync/shadowsync/internal/testserver"
	"github.com/shadowsync/shadowsync/localiot"
	"github.com/shadowsync/shadowsync/reconciler"
	"github.com/shadowsync/shadowsync/shadowstate"
)

// A shadow deleted and recreated more than 48 h later starts again from version 1
// (docs/protocol.md#versions). The controller must reconcile the new shadow.
func TestShadowRecreatedAtVersionOneIsReconciled(t *testing.T) {
	store := &localiot.MemoryStore{}
	srv := testserver.Start(t, localiot.Options{Store: store})

	m, _ := reconciler.NewManager(fastConfig(srv.Endpoints().Plain), reconciler.Options{Logger: testLogger(t)})
	_, err := reconciler.Register(m, reconciler.ControllerOptions{Things: []string{"re-1"}},
		reconciler.ReconcilerFunc[bigDev](func(_ context.Context, req reconciler.Request[bigDev]) (reconciler.Result, error) {
			req.Reported.Target = req.Desired.Target
			return reconciler.Result{}, nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	run(t, m)
	h := shadow(t, app(t, srv.Endpoints().Plain), "re-1")
	for i := range 5 {
		if _, err := h.UpdateDesired(t.Context(), map[string]any{"target": 20 + i}); err != nil {
			t.Fatal(err)
		}
		eventually(t, wait, func() error {
			r, err := reportedOf(srv, "re-1")
			if err != nil || fmt.Sprint(r["target"]) != fmt.Sprint(20+i) {
				return fmt.Errorf("reported %v %v", r, err)
			}
			return nil
		})
	}
	if _, err := h.Delete(t.Context()); err != nil {
		t.Fatal(err)
	}
	// pretend the delete happened three days ago
	s, _ := store.Load(shadowstate.ID{Thing: "re-1"})
	s.DeletedAt = time.Now().Add(-72 * time.Hour).Unix()
	_ = store.Save(s)
	acc, err := h.UpdateDesired(t.Context(), map[string]any{"target": 5})
	if err != nil {
		t.Fatal(err)
	}
	if acc.Version != 1 {
		t.Fatalf("the shadow was recreated at version %d; the test needs the 48-hour rule to restart it at 1", acc.Version)
	}
	eventually(t, wait, func() error {
		r, err := reportedOf(srv, "re-1")
		if err != nil || fmt.Sprint(r["target"]) != "5" {
			return fmt.Errorf("the recreated shadow was not reconciled: reported %v (%v)", r, err)
		}
		return nil
	})
}
