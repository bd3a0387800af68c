package reconciler_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shadowsync/shadowsync/internal/testserver"
	"github.com/shadowsync/shadowsync/localiot"
	"github.com/shadowsync/shadowsync/queue"
	"github.com/shadowsync/shadowsync/reconciler"
	"github.com/shadowsync/shadowsync/shadowstate"
)

type bigDev struct {
	Target int    `json:"target"`
	Blob   string `json:"blob,omitempty"`
}

// One rejected report must cost one backoff step, not two.
func TestRejectedReportCostsOneBackoffStep(t *testing.T) {
	srv := testserver.Start(t, localiot.Options{})
	base, _ := queue.NewRateLimiter[shadowstate.ID](queue.RateLimitOptions{BaseDelay: 5 * time.Millisecond, MaxDelay: time.Second})
	limiter := &recordingLimiter{RateLimiter: base}
	m, _ := reconciler.NewManager(fastConfig(srv.Endpoints().Plain), reconciler.Options{Logger: testLogger(t)})
	var calls atomic.Int32
	_, err := reconciler.Register(m, reconciler.ControllerOptions{Things: []string{"big-1"}, RateLimiter: limiter},
		reconciler.ReconcilerFunc[bigDev](func(_ context.Context, req reconciler.Request[bigDev]) (reconciler.Result, error) {
			n := calls.Add(1)
			req.Reported.Target = req.Desired.Target
			if n == 1 {
				req.Reported.Blob = strings.Repeat("x", 9000) // 413 once
			} else {
				req.Reported.Blob = ""
			}
			return reconciler.Result{}, nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	run(t, m)
	h := shadow(t, app(t, srv.Endpoints().Plain), "big-1")
	if _, err := h.UpdateDesired(t.Context(), map[string]any{"target": 20}); err != nil {
		t.Fatal(err)
	}
	eventually(t, wait, func() error {
		r, err := reportedOf(srv, "big-1")
		if err != nil || fmt.Sprint(r["target"]) != "20" {
			return fmt.Errorf("reported %v %v", r, err)
		}
		return nil
	})
	time.Sleep(200 * time.Millisecond)
	limiter.mu.Lock()
	defer limiter.mu.Unlock()
	t.Logf("calls=%d delays=%v", calls.Load(), limiter.delays)
	if len(limiter.delays) != 1 {
		t.Errorf("one failed report asked the limiter %d times: %v", len(limiter.delays), limiter.delays)
	}
}

// A 409 must lead to one more reconcile, not one now and another after a backoff.
func TestConflictingReportReconcilesOnceMore(t *testing.T) {
	srv := testserver.Start(t, localiot.Options{})
	base, _ := queue.NewRateLimiter[shadowstate.ID](queue.RateLimitOptions{BaseDelay: 20 * time.Millisecond, MaxDelay: time.Second})
	limiter := &recordingLimiter{RateLimiter: base}
	m, _ := reconciler.NewManager(fastConfig(srv.Endpoints().Plain), reconciler.Options{Logger: testLogger(t)})
	other := shadow(t, app(t, srv.Endpoints().Plain), "conf-1")
	var calls atomic.Int32
	_, err := reconciler.Register(m, reconciler.ControllerOptions{Things: []string{"conf-1"}, RateLimiter: limiter},
		reconciler.ReconcilerFunc[bigDev](func(ctx context.Context, req reconciler.Request[bigDev]) (reconciler.Result, error) {
			if req.Desired.Target == 0 {
				return reconciler.Result{}, nil
			}
			if calls.Add(1) == 1 {
				// another writer changes the shadow while we reconcile: our report conflicts
				if _, err := other.UpdateReported(ctx, map[string]any{"other": 1}); err != nil {
					return reconciler.Result{}, err
				}
			}
			req.Reported.Target = req.Desired.Target
			return reconciler.Result{}, nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	run(t, m)
	if _, err := other.UpdateDesired(t.Context(), map[string]any{"target": 20}); err != nil {
		t.Fatal(err)
	}
	eventually(t, wait, func() error {
		r, err := reportedOf(srv, "conf-1")
		if err != nil || fmt.Sprint(r["target"]) != "20" {
			return fmt.Errorf("reported %v %v", r, err)
		}
		return nil
	})
	time.Sleep(300 * time.Millisecond)
	t.Logf("calls=%d delays=%v", calls.Load(), limiter.delays)
	if calls.Load() != 2 {
		t.Errorf("Reconcile ran %d times for one conflict, want 2", calls.Load())
	}
}
