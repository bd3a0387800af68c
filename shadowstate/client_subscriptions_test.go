package shadowstate_test

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shadowsync/shadowsync/localiot"
	"github.com/shadowsync/shadowsync/shadowstate"
)

// Concurrent PerRequest requests on one shadow must all be answered: the last
// request's UNSUBSCRIBE may not overtake the next request's SUBSCRIBE.
func TestRegressionPerRequestSubscribeUnsubscribeRace(t *testing.T) {
	reviewRace(t, shadowstate.PerRequest)
}
func TestRegressionPersistentControl(t *testing.T) { reviewRace(t, shadowstate.Persistent) }
func reviewRace(t *testing.T, subsMode shadowstate.Subscriptions) {
	workers := 2
	srv := startLocalIoT(t, localiot.Options{})
	conn := dial(t, srv.Endpoints().Plain, nil)
	c := newClient(t, conn, shadowstate.ClientOptions{Subscriptions: subsMode, Timeout: time.Second})
	h, _ := c.Shadow("pr-1", "")
	if _, err := h.UpdateDesired(t.Context(), map[string]any{"x": 1}); err != nil {
		t.Fatal(err)
	}
	var timeouts, ok atomic.Int32
	var wg sync.WaitGroup
	ctx := t.Context()
	end := time.Now().Add(6 * time.Second)
	for range workers {
		wg.Go(func() {
			for time.Now().Before(end) {
				_, err := h.Get(ctx)
				switch {
				case errors.Is(err, shadowstate.ErrRequestTimeout):
					timeouts.Add(1)
				case err == nil:
					ok.Add(1)
				}
			}
		})
	}
	wg.Wait()
	t.Logf("ok=%d timeouts=%d", ok.Load(), timeouts.Load())
	if timeouts.Load() > 0 {
		t.Errorf("%d requests timed out", timeouts.Load())
	}
}
