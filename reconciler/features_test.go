package reconciler_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shadowsync/shadowsync/internal/testserver"
	"github.com/shadowsync/shadowsync/localiot"
	"github.com/shadowsync/shadowsync/reconciler"
)

func TestReportPublishesDeviceChanges(t *testing.T) {
	srv := testserver.Start(t, localiot.Options{})
	m, _ := reconciler.NewManager(fastConfig(srv.Endpoints().Plain), reconciler.Options{Logger: testLogger(t)})
	ctrl, err := reconciler.Register(m, reconciler.ControllerOptions{Things: []string{"sensor-1"}},
		reconciler.ReconcilerFunc[Thermostat](func(_ context.Context, req reconciler.Request[Thermostat]) (reconciler.Result, error) {
			req.Reported.Target = req.Desired.Target
			return reconciler.Result{}, nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	run(t, m)
	if err := m.Conn().AwaitConnection(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := ctrl.Report(t.Context(), "sensor-1", func(th *Thermostat) { th.Temp = 19.5 }); err != nil {
		t.Fatal(err)
	}
	h := shadow(t, app(t, srv.Endpoints().Plain), "sensor-1")
	if _, err := h.UpdateDesired(t.Context(), map[string]any{"target": 21}); err != nil {
		t.Fatal(err)
	}
	if err := ctrl.Report(t.Context(), "sensor-1", func(th *Thermostat) { th.Temp = 20.5 }); err != nil {
		t.Fatal(err)
	}
	eventually(t, wait, func() error {
		r, _ := reportedOf(srv, "sensor-1")
		if fmt.Sprint(r["temp"]) != "20.5" || fmt.Sprint(r["target"]) != "21" {
			return fmt.Errorf("reported %v", r)
		}
		return nil
	})
	if err := ctrl.Report(t.Context(), "not-managed", func(*Thermostat) {}); err == nil || !strings.Contains(err.Error(), "not managed") {
		t.Errorf("Report for an unmanaged thing: %v", err)
	}
}

func TestPeriodicResyncRetriesWhatIsStillDifferent(t *testing.T) {
	srv := testserver.Start(t, localiot.Options{})
	m, _ := reconciler.NewManager(fastConfig(srv.Endpoints().Plain), reconciler.Options{Resync: 50 * time.Millisecond, Logger: testLogger(t)})
	var calls atomic.Int32
	_, err := reconciler.Register(m, reconciler.ControllerOptions{Things: []string{"drift-1"}},
		reconciler.ReconcilerFunc[Thermostat](func(_ context.Context, req reconciler.Request[Thermostat]) (reconciler.Result, error) {
			if calls.Add(1) == 1 {
				return reconciler.Result{}, reconciler.TerminalError(errors.New("device unreachable"))
			}
			req.Reported.Target = req.Desired.Target
			return reconciler.Result{}, nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	run(t, m)
	h := shadow(t, app(t, srv.Endpoints().Plain), "drift-1")
	if _, err := h.UpdateDesired(t.Context(), map[string]any{"target": 23}); err != nil {
		t.Fatal(err)
	}
	// Nothing changes the shadow again: only the periodic resync can bring it level.
	eventually(t, wait, func() error {
		r, _ := reportedOf(srv, "drift-1")
		if fmt.Sprint(r["target"]) != "23" {
			return fmt.Errorf("reported %v after %d reconciles", r, calls.Load())
		}
		return nil
	})
}

func TestMetricsAreServed(t *testing.T) {
	srv := testserver.Start(t, localiot.Options{})
	m, err := reconciler.NewManager(fastConfig(srv.Endpoints().Plain), reconciler.Options{MetricsAddr: "127.0.0.1:0", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reconciler.Register(m, reconciler.ControllerOptions{Things: []string{"thermo-m"}, StatusField: "status"}, reconciler.ReconcilerFunc[Thermostat](thermostat)); err != nil {
		t.Fatal(err)
	}
	run(t, m)
	h := shadow(t, app(t, srv.Endpoints().Plain), "thermo-m")
	if _, err := h.UpdateDesired(t.Context(), map[string]any{"target": 21, "mode": "heat"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, wait, func() error {
		r, _ := reportedOf(srv, "thermo-m")
		if fmt.Sprint(r["temp"]) != "21" || r["heater"] != false {
			return fmt.Errorf("reported %v", r)
		}
		return nil
	})
	if _, err := h.UpdateDesired(t.Context(), map[string]any{"target": 99}); err != nil {
		t.Fatal(err)
	}
	eventually(t, wait, func() error {
		addr := m.MetricsAddr()
		if addr == nil {
			return errors.New("metrics not served yet")
		}
		resp, err := http.Get("http://" + addr.String() + "/metrics")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		for _, want := range []string{
			`shadowsync_reconciles_total{controller="Thermostat",result="success"}`,
			`shadowsync_reconciles_total{controller="Thermostat",result="requeue"}`,
			`shadowsync_reconciles_total{controller="Thermostat",result="invalid_desired"} 1`,
			`shadowsync_invalid_desired_total{controller="Thermostat"} 1`,
			`shadowsync_shadow_requests_total{conn="0",operation="update",outcome="accepted"}`,
			`shadowsync_shadow_requests_total{conn="0",operation="get",outcome=`,
			`shadowsync_connected{conn="0"} 1`,
			`shadowsync_queue_wait_seconds_count{controller="Thermostat"}`,
			`shadowsync_reconcile_duration_seconds_count{controller="Thermostat"}`,
		} {
			if !strings.Contains(string(body), want) {
				return fmt.Errorf("/metrics lacks %s", want)
			}
		}
		return nil
	})
}

func TestRegisterAndManagerErrors(t *testing.T) {
	m, err := reconciler.NewManager(fastConfig("mqtt://127.0.0.1:1"), reconciler.Options{})
	if err != nil {
		t.Fatal(err)
	}
	noop := reconciler.ReconcilerFunc[Thermostat](func(context.Context, reconciler.Request[Thermostat]) (reconciler.Result, error) {
		return reconciler.Result{}, nil
	})
	for _, tc := range []struct {
		opts reconciler.ControllerOptions
		r    reconciler.Reconciler[Thermostat]
		want string
	}{
		{reconciler.ControllerOptions{}, noop, "no things"},
		{reconciler.ControllerOptions{Things: []string{"bad name"}}, noop, "thing name"},
		{reconciler.ControllerOptions{Things: []string{"a", "a"}}, noop, "listed twice"},
		{reconciler.ControllerOptions{Things: []string{"a"}, MaxConcurrentReconciles: -1}, noop, "negative"},
		{reconciler.ControllerOptions{Things: []string{"a"}}, nil, "nil Reconciler"},
	} {
		if _, err := reconciler.Register(m, tc.opts, tc.r); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Register(%+v): %v, want an error containing %q", tc.opts, err, tc.want)
		}
	}
	if _, err := reconciler.NewManager(fastConfig(""), reconciler.Options{Resync: -1}); err == nil {
		t.Error("negative Resync accepted")
	}
	if _, err := reconciler.NewManager(fastConfig("ftp://x"), reconciler.Options{}); err == nil {
		t.Error("bad endpoint accepted")
	}
}
