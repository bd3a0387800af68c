package reconciler_test

import (
	"context"
	"fmt"
	"slices"
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

// A report the shadow service rejects (413: too large) costs one backoff step, not
// two: exactly one layer retries a failed report.
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
	// A reconcile is counted once its outcome has been acted on, so when the retry has
	// succeeded, every backoff the failed report asked for has been asked of the
	// limiter.
	eventually(t, wait, func() error {
		if reconciles(t, m, "success") < 1 {
			return fmt.Errorf("no reconcile has succeeded (%v with a failed report)", reconciles(t, m, "report_failed"))
		}
		return nil
	})
	if n := reconciles(t, m, "report_failed"); n != 1 {
		t.Fatalf("%v reconciles had their report rejected, want 1: the test needs the first report to be refused", n)
	}
	if r, err := reportedOf(srv, "big-1"); err != nil || fmt.Sprint(r["target"]) != "20" {
		t.Fatalf("after the retry succeeded, reported %v (%v), want target 20", r, err)
	}
	limiter.mu.Lock()
	defer limiter.mu.Unlock()
	t.Logf("calls=%d delays=%v", calls.Load(), limiter.delays)
	if len(limiter.delays) != 1 {
		t.Errorf("one failed report asked the limiter %d times: %v", len(limiter.delays), limiter.delays)
	}
}

// A report that conflicts (409) with another writer's update costs exactly one more
// reconcile, at once: not one now and another after a backoff.
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
	// When the reconcile after the conflict has been counted, the conflicted one's
	// outcome has been acted on too: whatever it queued or retried has been asked for.
	eventually(t, wait, func() error {
		if reconciles(t, m, "success") < 1 {
			return fmt.Errorf("no reconcile has succeeded (%v conflicted)", reconciles(t, m, "conflict"))
		}
		return nil
	})
	if n := reconciles(t, m, "conflict"); n != 1 {
		t.Fatalf("%v reconciles conflicted, want 1: the test needs the first report to conflict", n)
	}
	if r, err := reportedOf(srv, "conf-1"); err != nil || fmt.Sprint(r["target"]) != "20" {
		t.Fatalf("after the reconcile that followed the conflict, reported %v (%v), want target 20", r, err)
	}
	limiter.mu.Lock()
	delays := slices.Clone(limiter.delays)
	limiter.mu.Unlock()
	t.Logf("calls=%d delays=%v", calls.Load(), delays)
	if len(delays) != 0 {
		t.Errorf("the conflict was also retried with backoff: the limiter was asked for %v", delays)
	}
	// And no other reconcile follows: a retry would run within a backoff step (20 ms).
	consistently(t, 300*time.Millisecond, func() error {
		if n := calls.Load(); n != 2 {
			return fmt.Errorf("Reconcile ran %d times for one conflict, want 2", n)
		}
		return nil
	})
}
