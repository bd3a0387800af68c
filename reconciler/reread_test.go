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
	srv := testserver.Start(t, localiot.Options{Limits: localiot.Limits{PublishesPerSecond: 2}})
	proxy, err := faultproxy.Start(srv.Endpoints().Plain[len("mqtt://"):])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	offline := make(chan struct{}, 8)
	cfg := fastConfig("mqtt://" + proxy.Addr())
	cfg.OnOffline = func(error) { offline <- struct{}{} }
	m, _ := reconciler.NewManager(cfg, reconciler.Options{Logger: testLogger(t), Shadow: shadowstate.ClientOptions{Timeout: 300 * time.Millisecond}})
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
	time.Sleep(2 * time.Second) // let the token bucket refill
	proxy.Cut()
	<-offline
	for _, th := range things {
		appSet(t, shadow(t, c, th), 2)
	}
	proxy.Restore()
	eventually(t, 20*time.Second, check(2))
}

func appSet(t *testing.T, h *shadowstate.Handle, n int) {
	for range 20 {
		time.Sleep(600 * time.Millisecond)
		if _, err := h.UpdateDesired(t.Context(), map[string]any{"n": n}); err == nil {
			return
		}
	}
	t.Fatal("app update kept failing")
}
