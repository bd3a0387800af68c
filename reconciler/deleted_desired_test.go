package reconciler_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/shadowsync/shadowsync/internal/testserver"
	"github.com/shadowsync/shadowsync/localiot"
	"github.com/shadowsync/shadowsync/reconciler"
	"github.com/shadowsync/shadowsync/shadowstate"
)

type staleDev struct {
	Target int    `json:"target"`
	Mode   string `json:"mode,omitempty"`
}

// A desired key deleted by an update must never reach Reconcile's raw desired state
// at that update's version (the cache must not claim version V while holding desired
// from V-1). (Request.Desired does hold it: the device last reported it.)
func TestReconcileNeverSeesADesiredKeyDeletedAtItsVersion(t *testing.T) {
	srv := testserver.Start(t, localiot.Options{})
	m, err := reconciler.NewManager(fastConfig(srv.Endpoints().Plain), reconciler.Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	type rec struct {
		thing   string
		version int64
		mode    string
	}
	var mu sync.Mutex
	var recs []rec
	const n = 40
	var things []string
	for i := range n {
		things = append(things, fmt.Sprintf("stale-%d", i))
	}
	_, err = reconciler.Register(m, reconciler.ControllerOptions{Things: things, MaxConcurrentReconciles: 8},
		reconciler.ReconcilerFunc[staleDev](func(_ context.Context, req reconciler.Request[staleDev]) (reconciler.Result, error) {
			mu.Lock()
			mode, _ := req.RawDesired["mode"].(string)
			recs = append(recs, rec{req.Thing, req.Version, mode})
			mu.Unlock()
			*req.Reported = req.Desired
			return reconciler.Result{}, nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	run(t, m)
	c := app(t, srv.Endpoints().Plain)
	bad := 0
	for _, thing := range things {
		h := shadow(t, c, thing)
		if _, err := h.UpdateDesired(t.Context(), map[string]any{"target": 20, "mode": "eco"}); err != nil {
			t.Fatal(err)
		}
		eventually(t, wait, func() error {
			r, err := reportedOf(srv, thing)
			if err != nil || fmt.Sprint(r["target"]) != "20" {
				return fmt.Errorf("reported %v %v", r, err)
			}
			return nil
		})
		acc, err := h.UpdateDesired(t.Context(), json.RawMessage(`{"target":25,"mode":null}`))
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, wait, func() error {
			r, err := reportedOf(srv, thing)
			if err != nil || fmt.Sprint(r["target"]) != "25" {
				return fmt.Errorf("reported %v %v", r, err)
			}
			return nil
		})
		mu.Lock()
		for _, r := range recs {
			if r.thing == thing && r.version >= acc.Version && r.mode == "eco" {
				bad++
				s, _ := srv.Shadow(shadowInfoID(thing))
				t.Logf("%s: Reconcile saw deleted desired mode=eco at version %d; shadow now desired=%v reported=%v", thing, r.version, s.Desired, s.Reported)
				break
			}
		}
		mu.Unlock()
	}
	if bad > 0 {
		t.Errorf("%d/%d shadows reconciled with a desired key the update at that version had deleted", bad, n)
	}
}

func shadowInfoID(thing string) shadowstate.ID { return shadowstate.ID{Thing: thing} }
