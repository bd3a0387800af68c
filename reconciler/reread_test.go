package reconciler_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shadowsync/shadowsync/internal/testserver"
	"github.com/shadowsync/shadowsync/localiot"
	"github.com/shadowsync/shadowsync/reconciler"
	"github.com/shadowsync/shadowsync/shadowclient"
	"github.com/shadowsync/shadowsync/shadowstate"
)

type nDev struct {
	N int `json:"n"`
}

// When the re-read after a reconnect fails, the retry must re-read the shadow, not
// reconcile the stale cache: otherwise the delta missed while offline is lost.
func TestOfflineChangeSurvivesAFailedReRead(t *testing.T) {
	if os.Getenv("SHADOWSYNC_SOAK") == "" {
		t.Skip("set SHADOWSYNC_SOAK=1 to run: it throttles the broker to 2 publishes/s and takes about 30 s (.ci/run does)")
	}
	srv := testserver.Start(t, localiot.Options{Limits: localiot.Limits{MaxPublishRate: 2}})
	proxy, cfg, offline := behindProxy(t, srv)
	m, err := reconciler.NewManager(cfg, reconciler.Options{Logger: testLogger(t), Client: shadowclient.Options{Timeout: 300 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	var things []string
	for i := range 8 {
		things = append(things, fmt.Sprintf("rr-%d", i))
	}
	_, err = reconciler.Register(m, reconciler.ControllerOptions{Things: things},
		reconciler.ReconcilerFunc[nDev](func(_ context.Context, req reconciler.Request[nDev]) (reconciler.Result, error) {
			req.Reported.N = req.Desired.N
			return reconciler.Result{}, nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	c := app(t, srv.Endpoints().Plain)
	for _, th := range things {
		appSet(t, shadow(t, c, th), 1)
	}
	run(t, m)
	check := func(n int) func() error {
		return func() error {
			var bad []string
			for _, th := range things {
				r, _ := reportedOf(srv, th)
				if fmt.Sprint(r["n"]) != fmt.Sprint(n) {
					bad = append(bad, th)
				}
			}
			if len(bad) > 0 {
				return fmt.Errorf("not converged to n=%d: %v", n, bad)
			}
			return nil
		}
	}
	eventually(t, 60*time.Second, check(1))
	proxy.Cut()
	select {
	case <-offline:
	case <-time.After(wait):
		t.Fatal("the device did not notice the cut")
	}
	for _, th := range things {
		appSet(t, shadow(t, c, th), 2)
	}
	timeoutsBefore := getTimeouts(t, m)
	proxy.Restore()
	eventually(t, 20*time.Second, check(2))
	// The test is about re-reads that fail: the throttle must have made some time out
	// after the reconnect, or it passed without exercising the retry.
	n := getTimeouts(t, m) - timeoutsBefore
	t.Logf("%v shadow reads timed out after the reconnect", n)
	if n == 0 {
		t.Error("no shadow read timed out after the reconnect: the test did not exercise a failed re-read")
	}
}

// getTimeouts returns how many of m's shadow reads have timed out.
func getTimeouts(t *testing.T, m *reconciler.Manager) float64 {
	t.Helper()
	return counterWith(t, m.Registry(), "shadowsync_shadow_requests_total", map[string]string{"operation": "get", "outcome": "timeout"})
}

// appSet sets desired n on h as an app would under the broker's 2 publishes/s: it
// spaces its publishes 600 ms apart (pacing the scenario, not waiting for a
// condition) and tries again when one is dropped by the throttle.
func appSet(t *testing.T, h *shadowclient.Handle, n int) {
	t.Helper()
	for range 20 {
		time.Sleep(600 * time.Millisecond) // pacing under the throttle; see above
		if _, err := h.UpdateDesired(t.Context(), map[string]any{"n": n}); err == nil {
			return
		}
	}
	t.Fatal("app update kept failing")
}

// stallingLimiter retries a shadow's first failure after 10 ms and every later one
// after an hour, until Forget: it makes the backoff a shadow has built up visible.
type stallingLimiter struct {
	mu       sync.Mutex
	failures map[shadowstate.ID]int
}

func (l *stallingLimiter) When(id shadowstate.ID) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failures == nil {
		l.failures = map[shadowstate.ID]int{}
	}
	l.failures[id]++
	if l.failures[id] == 1 {
		return 10 * time.Millisecond
	}
	return time.Hour
}

func (l *stallingLimiter) Forget(id shadowstate.ID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.failures, id)
}

func (l *stallingLimiter) NumRequeues(id shadowstate.ID) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failures[id]
}

// Failures before an outage do not delay the shadow after it: the re-read after the
// reconnect resets the shadow's backoff. Here the shadow failed twice before the
// outage (its next retry an hour away), the application changed it meanwhile, and
// after the reconnect its first reconcile fails once more: it is retried at the
// shortest delay and converges. Before, the retry waited the backoff built up before
// the outage (in TestOfflineChangeSurvivesAFailedReRead, under a throttled broker,
// 25 to 50 s).
func TestReconnectResetsTheBackoff(t *testing.T) {
	srv := testserver.Start(t, localiot.Options{})
	proxy, cfg, offline := behindProxy(t, srv)
	m, err := reconciler.NewManager(cfg, reconciler.Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	var failNext atomic.Int32
	calls := make(chan int, 16)
	if _, err := reconciler.Register(m, reconciler.ControllerOptions{Things: []string{"backoff-1"}, RateLimiter: &stallingLimiter{}},
		reconciler.ReconcilerFunc[nDev](func(_ context.Context, req reconciler.Request[nDev]) (reconciler.Result, error) {
			calls <- req.Desired.N
			if failNext.Add(-1) >= 0 {
				return reconciler.Result{}, errors.New("device busy")
			}
			req.Reported.N = req.Desired.N
			return reconciler.Result{}, nil
		})); err != nil {
		t.Fatal(err)
	}
	run(t, m)
	h := shadow(t, app(t, srv.Endpoints().Plain), "backoff-1")
	failNext.Store(2)
	if _, err := h.UpdateDesired(t.Context(), map[string]any{"n": 1}); err != nil {
		t.Fatal(err)
	}
	recv(t, calls, "the first reconcile of n=1")
	recv(t, calls, "the retry of n=1, 10 ms on") // fails too: the next retry is an hour away
	proxy.Cut()
	recv(t, offline, "the device noticing the cut")
	if _, err := h.UpdateDesired(t.Context(), map[string]any{"n": 2}); err != nil {
		t.Fatal(err)
	}
	failNext.Store(1)
	proxy.Restore()
	eventually(t, wait, func() error {
		if r, _ := reportedOf(srv, "backoff-1"); fmt.Sprint(r["n"]) != "2" {
			return fmt.Errorf("reported %v after the reconnect, want n=2", r)
		}
		return nil
	})
}
