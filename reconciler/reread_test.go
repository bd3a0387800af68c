package reconciler_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/shadowsync/shadowsync/internal/faultproxy"
	"github.com/shadowsync/shadowsync/internal/testserver"
	"github.com/shadowsync/shadowsync/localiot"
	"github.com/shadowsync/shadowsync/reconciler"
	"github.com/shadowsync/shadowsync/shadowclient"
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
	proxy, err := faultproxy.Start(srv.Endpoints().Plain[len("mqtt://"):])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	offline := make(chan struct{}, 8)
	cfg := fastConfig("mqtt://" + proxy.Addr())
	cfg.OnOffline = func(error) { offline <- struct{}{} }
	m, _ := reconciler.NewManager(cfg, reconciler.Options{Logger: testLogger(t), Client: shadowclient.Options{Timeout: 300 * time.Millisecond}})
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
