package reconciler_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shadowsync/shadowsync/internal/testserver"
	"github.com/shadowsync/shadowsync/localiot"
	"github.com/shadowsync/shadowsync/queue"
	"github.com/shadowsync/shadowsync/reconciler"
	"github.com/shadowsync/shadowsync/shadowstate"
)

// Thermostat is the device of these tests: an app desires a target and a mode; the
// device reports its temperature, which moves one step per reconcile.
type Thermostat struct {
	Target float64 `json:"target" jsonschema:"minimum=5,maximum=30"`
	Mode   string  `json:"mode,omitempty" jsonschema:"enum=off,enum=heat,enum=cool"`
	Temp   float64 `json:"temp"`
	Heater bool    `json:"heater"`
}

func thermostat(_ context.Context, req reconciler.Request[Thermostat]) (reconciler.Result, error) {
	r := req.Reported
	r.Target, r.Mode = req.Desired.Target, req.Desired.Mode
	switch {
	case req.Desired.Mode == "heat" && r.Temp < req.Desired.Target:
		r.Temp = min(r.Temp+1, req.Desired.Target)
		r.Heater = true
	default:
		r.Heater = false
	}
	if r.Heater {
		return reconciler.Result{RequeueAfter: 10 * time.Millisecond}, nil
	}
	return reconciler.Result{}, nil
}

func TestThermostatConverges(t *testing.T) {
	srv := testserver.Start(t, localiot.Options{})
	m, err := reconciler.NewManager(fastConfig(srv.Endpoints().Plain), reconciler.Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reconciler.Register(m, reconciler.ControllerOptions{Things: []string{"thermo-1"}}, reconciler.ReconcilerFunc[Thermostat](thermostat)); err != nil {
		t.Fatal(err)
	}
	run(t, m)
	h := shadow(t, app(t, srv.Endpoints().Plain), "thermo-1")
	if _, err := h.UpdateDesired(t.Context(), map[string]any{"target": 22, "mode": "heat"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, wait, func() error {
		r, err := reportedOf(srv, "thermo-1")
		if err != nil {
			return err
		}
		if fmt.Sprint(r["temp"]) != "22" || r["heater"] != false || r["mode"] != "heat" {
			return fmt.Errorf("reported %v", r)
		}
		return nil
	})
}

// recordingLimiter records the delays the queue asks for, to check the backoff
// sequence without timing anything.
type recordingLimiter struct {
	queue.RateLimiter[shadowstate.ID]
	mu     sync.Mutex
	delays []time.Duration
}

func (r *recordingLimiter) When(id shadowstate.ID) time.Duration {
	d := r.RateLimiter.When(id)
	r.mu.Lock()
	r.delays = append(r.delays, d)
	r.mu.Unlock()
	return d
}

func TestReconcileErrorIsRetriedWithBackoff(t *testing.T) {
	srv := testserver.Start(t, localiot.Options{})
	base, err := queue.NewRateLimiter[shadowstate.ID](queue.RateLimitOptions{BaseDelay: 5 * time.Millisecond, MaxDelay: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	limiter := &recordingLimiter{RateLimiter: base}
	m, err := reconciler.NewManager(fastConfig(srv.Endpoints().Plain), reconciler.Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	_, err = reconciler.Register(m, reconciler.ControllerOptions{Things: []string{"flaky-1"}, RateLimiter: limiter},
		reconciler.ReconcilerFunc[Thermostat](func(_ context.Context, req reconciler.Request[Thermostat]) (reconciler.Result, error) {
			n := calls.Add(1)
			req.Reported.Temp = float64(n) // reported must follow the device even on failure
			if n < 4 {
				return reconciler.Result{}, fmt.Errorf("device busy (attempt %d)", n)
			}
			req.Reported.Target = req.Desired.Target
			return reconciler.Result{}, nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	run(t, m)
	h := shadow(t, app(t, srv.Endpoints().Plain), "flaky-1")
	if _, err := h.UpdateDesired(t.Context(), map[string]any{"target": 20}); err != nil {
		t.Fatal(err)
	}
	eventually(t, wait, func() error {
		r, err := reportedOf(srv, "flaky-1")
		if err != nil {
			return err
		}
		if fmt.Sprint(r["target"]) != "20" || fmt.Sprint(r["temp"]) != "4" {
			return fmt.Errorf("reported %v after %d calls", r, calls.Load())
		}
		return nil
	})
	limiter.mu.Lock()
	delays := append([]time.Duration(nil), limiter.delays...)
	limiter.mu.Unlock()
	want := []time.Duration{5 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond}
	if fmt.Sprint(delays) != fmt.Sprint(want) {
		t.Errorf("retry delays %v, want %v", delays, want)
	}
}

func TestTerminalErrorIsNotRetried(t *testing.T) {
	srv := testserver.Start(t, localiot.Options{})
	m, _ := reconciler.NewManager(fastConfig(srv.Endpoints().Plain), reconciler.Options{Logger: testLogger(t)})
	calls := make(chan int, 8)
	var n atomic.Int32
	_, err := reconciler.Register(m, reconciler.ControllerOptions{Things: []string{"term-1"}},
		reconciler.ReconcilerFunc[Thermostat](func(_ context.Context, req reconciler.Request[Thermostat]) (reconciler.Result, error) {
			calls <- int(n.Add(1))
			if req.Desired.Target == 7 {
				return reconciler.Result{}, reconciler.TerminalError(errors.New("7 is unlucky"))
			}
			req.Reported.Target = req.Desired.Target
			return reconciler.Result{}, nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	run(t, m)
	h := shadow(t, app(t, srv.Endpoints().Plain), "term-1")
	if _, err := h.UpdateDesired(t.Context(), map[string]any{"target": 7}); err != nil {
		t.Fatal(err)
	}
	recv(t, calls, "no reconcile for the first desired state")
	// A later change is the next thing Reconcile sees: no retry came in between.
	if _, err := h.UpdateDesired(t.Context(), map[string]any{"target": 8}); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-calls:
		if got != 2 {
			t.Fatalf("call %d", got)
		}
	case <-time.After(wait):
		t.Fatal("no reconcile for the new desired state")
	}
	eventually(t, wait, func() error {
		r, _ := reportedOf(srv, "term-1")
		if fmt.Sprint(r["target"]) != "8" {
			return fmt.Errorf("reported %v", r)
		}
		return nil
	})
	if n.Load() != 2 {
		t.Errorf("Reconcile called %d times, want 2", n.Load())
	}
}

func TestInvalidDesiredNeverReachesReconcile(t *testing.T) {
	srv := testserver.Start(t, localiot.Options{})
	m, _ := reconciler.NewManager(fastConfig(srv.Endpoints().Plain), reconciler.Options{Logger: testLogger(t)})
	var seen sync.Map
	_, err := reconciler.Register(m, reconciler.ControllerOptions{Things: []string{"strict-1"}, StatusField: "status"},
		reconciler.ReconcilerFunc[Thermostat](func(_ context.Context, req reconciler.Request[Thermostat]) (reconciler.Result, error) {
			seen.Store(req.Desired.Target, true)
			req.Reported.Target = req.Desired.Target
			return reconciler.Result{}, nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	run(t, m)
	h := shadow(t, app(t, srv.Endpoints().Plain), "strict-1")
	ctx := t.Context()
	if _, err := h.UpdateDesired(ctx, map[string]any{"target": 21}); err != nil {
		t.Fatal(err)
	}
	eventually(t, wait, func() error {
		r, _ := reportedOf(srv, "strict-1")
		if fmt.Sprint(r["target"]) != "21" {
			return fmt.Errorf("reported %v", r)
		}
		return nil
	})
	for _, tc := range []struct {
		desired map[string]any
		words   string
	}{
		{map[string]any{"target": 45}, "/target"},
		{map[string]any{"target": "warm"}, "/target"},
		{map[string]any{"target": 21, "mode": "turbo"}, "/mode"},
		{map[string]any{"target": 21, "colour": "red"}, "colour"},
	} {
		acc, err := h.UpdateDesired(ctx, tc.desired)
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, wait, func() error {
			r, _ := reportedOf(srv, "strict-1")
			st, _ := r["status"].(shadowstate.Object)
			if fmt.Sprint(st["ok"]) != "false" || !containsAll(fmt.Sprint(st["error"]), "strict-1", tc.words) && !containsAll(fmt.Sprint(st["error"]), tc.words) {
				return fmt.Errorf("status %v for desired %v (version %d)", st, tc.desired, acc.Version)
			}
			if fmt.Sprint(r["target"]) != "21" {
				return fmt.Errorf("reported target changed to %v", r["target"])
			}
			return nil
		})
		// Put desired back to a valid state for the next case.
		if _, err := h.Update(ctx, shadowstate.StateUpdate{Desired: []byte(`null`)}); err != nil {
			t.Fatal(err)
		}
		if _, err := h.UpdateDesired(ctx, map[string]any{"target": 21}); err != nil {
			t.Fatal(err)
		}
		eventually(t, wait, func() error {
			r, _ := reportedOf(srv, "strict-1")
			if fmt.Sprint(r["target"]) != "21" {
				return fmt.Errorf("reported %v after desired was made valid again", r)
			}
			return nil
		})
	}
	if _, bad := seen.Load(float64(45)); bad {
		t.Error("Reconcile saw target 45, which the schema forbids")
	}
}

func containsAll(s string, words ...string) bool {
	for _, w := range words {
		if !strings.Contains(s, w) {
			return false
		}
	}
	return true
}

func TestPanickingReconcileDoesNotStopOthers(t *testing.T) {
	srv := testserver.Start(t, localiot.Options{})
	m, _ := reconciler.NewManager(fastConfig(srv.Endpoints().Plain), reconciler.Options{Logger: testLogger(t)})
	_, err := reconciler.Register(m, reconciler.ControllerOptions{Things: []string{"bad-1", "good-1"}, MaxConcurrentReconciles: 2},
		reconciler.ReconcilerFunc[Thermostat](func(_ context.Context, req reconciler.Request[Thermostat]) (reconciler.Result, error) {
			if req.Thing == "bad-1" {
				panic("driver crashed")
			}
			req.Reported.Target = req.Desired.Target
			return reconciler.Result{}, nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	run(t, m)
	c := app(t, srv.Endpoints().Plain)
	for _, thing := range []string{"bad-1", "good-1"} {
		if _, err := shadow(t, c, thing).UpdateDesired(t.Context(), map[string]any{"target": 19}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, wait, func() error {
		r, err := reportedOf(srv, "good-1")
		if err != nil || fmt.Sprint(r["target"]) != "19" {
			return fmt.Errorf("good-1 reported %v (%v)", r, err)
		}
		return nil
	})
}

func TestDesiredChangedWhileOfflineIsReconciledAfterReconnect(t *testing.T) {
	srv := testserver.Start(t, localiot.Options{})
	proxy, cfg, offline := behindProxy(t, srv)
	m, _ := reconciler.NewManager(cfg, reconciler.Options{Logger: testLogger(t)})
	if _, err := reconciler.Echo(m, "away-1"); err != nil {
		t.Fatal(err)
	}
	run(t, m)
	h := shadow(t, app(t, srv.Endpoints().Plain), "away-1")
	if _, err := h.UpdateDesired(t.Context(), map[string]any{"n": 1}); err != nil {
		t.Fatal(err)
	}
	eventually(t, wait, func() error {
		r, _ := reportedOf(srv, "away-1")
		if fmt.Sprint(r["n"]) != "1" {
			return fmt.Errorf("reported %v", r)
		}
		return nil
	})
	proxy.Cut()
	select {
	case <-offline:
	case <-time.After(wait):
		t.Fatal("the manager never went offline")
	}
	// The delta for this change is published while the device is away.
	if _, err := h.UpdateDesired(t.Context(), map[string]any{"n": 2, "extra": "while away"}); err != nil {
		t.Fatal(err)
	}
	proxy.Restore()
	eventually(t, wait, func() error {
		r, _ := reportedOf(srv, "away-1")
		if fmt.Sprint(r["n"]) != "2" || r["extra"] != "while away" {
			return fmt.Errorf("reported %v", r)
		}
		return nil
	})
}

func TestRacingWritersEndConsistent(t *testing.T) {
	srv := testserver.Start(t, localiot.Options{})
	m, _ := reconciler.NewManager(fastConfig(srv.Endpoints().Plain), reconciler.Options{Logger: testLogger(t)})
	entered, release := make(chan struct{}, 4), make(chan struct{})
	var calls atomic.Int32
	_, err := reconciler.Register(m, reconciler.ControllerOptions{Things: []string{"race-1"}},
		reconciler.ReconcilerFunc[Thermostat](func(_ context.Context, req reconciler.Request[Thermostat]) (reconciler.Result, error) {
			if calls.Add(1) == 1 {
				entered <- struct{}{}
				<-release // another writer reports while this reconcile runs
			}
			req.Reported.Target = req.Desired.Target
			return reconciler.Result{}, nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	run(t, m)
	h := shadow(t, app(t, srv.Endpoints().Plain), "race-1")
	if _, err := h.UpdateDesired(t.Context(), map[string]any{"target": 18}); err != nil {
		t.Fatal(err)
	}
	recv(t, entered, "no reconcile started")
	if _, err := h.UpdateReported(t.Context(), map[string]any{"firmware": "2.1"}); err != nil {
		t.Fatal(err)
	}
	close(release)
	eventually(t, wait, func() error {
		r, _ := reportedOf(srv, "race-1")
		if fmt.Sprint(r["target"]) != "18" || r["firmware"] != "2.1" {
			return fmt.Errorf("reported %v", r)
		}
		return nil
	})
	if calls.Load() < 2 {
		t.Errorf("Reconcile ran %d times: the conflicting report was not retried", calls.Load())
	}
}

func TestThousandThingsOnOneConnection(t *testing.T) {
	srv := testserver.Start(t, localiot.Options{})
	const n = 1000
	things := make([]string, n)
	for i := range things {
		things[i] = fmt.Sprintf("echo-%04d", i)
	}
	m, _ := reconciler.NewManager(fastConfig(srv.Endpoints().Plain), reconciler.Options{Logger: testLogger(t)})
	if _, err := reconciler.Register(m, reconciler.ControllerOptions{Name: "echo", Things: things, MaxConcurrentReconciles: 8},
		reconciler.ReconcilerFunc[shadowstate.Object](func(_ context.Context, req reconciler.Request[shadowstate.Object]) (reconciler.Result, error) {
			*req.Reported = shadowstate.Merge(*req.Reported, req.Delta)
			return reconciler.Result{}, nil
		})); err != nil {
		t.Fatal(err)
	}
	run(t, m)
	c := app(t, srv.Endpoints().Plain)
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for i, thing := range things {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if _, err := shadow(t, c, thing).UpdateDesired(t.Context(), map[string]any{"seq": i}); err != nil {
				t.Errorf("%s: %v", thing, err)
			}
		})
	}
	wg.Wait()
	eventually(t, 60*time.Second, func() error {
		behind := 0
		for i, thing := range things {
			r, _ := reportedOf(srv, thing)
			if fmt.Sprint(r["seq"]) != fmt.Sprint(i) {
				behind++
			}
		}
		if behind > 0 {
			return fmt.Errorf("%d of %d things not converged", behind, n)
		}
		return nil
	})
}
