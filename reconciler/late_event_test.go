package reconciler_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shadowsync/shadowsync/internal/mosquitto"
	"github.com/shadowsync/shadowsync/internal/testserver"
	"github.com/shadowsync/shadowsync/localiot"
	"github.com/shadowsync/shadowsync/reconciler"
	"github.com/shadowsync/shadowsync/shadowstate"
	"github.com/shadowsync/shadowsync/transport"
)

// A documents message older than what the controller holds — delivered late: on a
// pool, a copy that came through another connection; here the same message published
// again, on mosquitto, where any client may publish on the shadow service's topics
// (localiot refuses that) — makes the controller read the shadow once, to tell a late
// copy from a shadow whose versions went back, and finding the versions where they
// were, it does not call Reconcile. The next change is reconciled as usual. Before,
// the late copy queued a whole reconcile of a state already reconciled.
func TestLateDocumentsMessageIsCheckedNotReconciled(t *testing.T) {
	endpoint := "mqtt://" + mosquitto.Start(t)
	testserver.StartShadowService(t, localiot.BrokerShadowOptions{Broker: endpoint})
	gets := countGets(t, endpoint)
	m, err := reconciler.NewManager(fastConfig(endpoint), reconciler.Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	if _, err := reconciler.Register(m, reconciler.ControllerOptions{Things: []string{"late-1"}},
		reconciler.ReconcilerFunc[Thermostat](func(_ context.Context, req reconciler.Request[Thermostat]) (reconciler.Result, error) {
			calls.Add(1)
			req.Reported.Target = req.Desired.Target
			return reconciler.Result{}, nil
		})); err != nil {
		t.Fatal(err)
	}
	run(t, m)

	// A connection of the test's own: it keeps each documents message of late-1 as
	// published, and publishes one of them again later.
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	raw, err := transport.Dial(ctx, fastConfig(endpoint))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = raw.Close(context.Background()) })
	topic := shadowstate.ID{Thing: "late-1"}.Topic(shadowstate.OpUpdate, shadowstate.Documents)
	published := make(chan []byte, 16)
	if _, err := raw.Subscribe(ctx, topic, transport.HandlerFunc(func(_ context.Context, msg transport.Message) {
		published <- append([]byte(nil), msg.Payload...)
	})); err != nil {
		t.Fatal(err)
	}

	h := shadow(t, app(t, endpoint), "late-1")
	acc, err := h.UpdateDesired(t.Context(), map[string]any{"target": 21})
	if err != nil {
		t.Fatal(err)
	}
	var change []byte // the documents message of the app's change
	for change == nil {
		p := recv(t, published, "the documents message of the app's change")
		var d shadowstate.DocumentsMessage
		if err := json.Unmarshal(p, &d); err != nil {
			t.Fatal(err)
		}
		if d.Current.Version == acc.Version {
			change = p
		}
	}
	reportsTarget := func(want int) func() error {
		return func() error {
			doc, err := h.Get(t.Context())
			if err != nil {
				return err
			}
			if r := doc.State.Reported; fmt.Sprint(r["target"]) != fmt.Sprint(want) {
				return fmt.Errorf("reported %v, want target %d", r, want)
			}
			return nil
		}
	}
	eventually(t, wait, reportsTarget(21))
	before := gets.quiet(t)["late-1"]
	n := calls.Load()

	if err := raw.Publish(ctx, topic, change, transport.QoS(1)); err != nil {
		t.Fatal(err)
	}
	eventually(t, wait, func() error {
		if got := gets.snapshot()["late-1"]; got != before+1 {
			return fmt.Errorf("late-1 read %d times since the late copy, want once", got-before)
		}
		return nil
	})
	consistently(t, 300*time.Millisecond, func() error {
		if got := calls.Load(); got != n {
			return fmt.Errorf("Reconcile called %d more times for a late copy of a state it reconciled", got-n)
		}
		if got := gets.snapshot()["late-1"]; got != before+1 {
			return fmt.Errorf("late-1 read %d times since the late copy, want once", got-before)
		}
		return nil
	})

	if _, err := h.UpdateDesired(t.Context(), map[string]any{"target": 22}); err != nil {
		t.Fatal(err)
	}
	eventually(t, wait, reportsTarget(22))
	if got := calls.Load(); got != n+1 {
		t.Errorf("Reconcile called %d times for the change after the late copy, want once", got-n)
	}
}
