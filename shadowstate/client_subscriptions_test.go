package shadowstate_test

import (
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shadowsync/shadowsync/internal/testserver"
	"github.com/shadowsync/shadowsync/localiot"
	"github.com/shadowsync/shadowsync/shadowstate"
	"github.com/shadowsync/shadowsync/transport"
)

// Concurrent PerRequest requests on one shadow must all be answered: the last
// request's UNSUBSCRIBE may not overtake the next request's SUBSCRIBE.
func TestRegressionPerRequestSubscribeUnsubscribeRace(t *testing.T) {
	reviewRace(t, shadowstate.PerRequest)
}
func TestRegressionPersistentControl(t *testing.T) { reviewRace(t, shadowstate.Persistent) }
func reviewRace(t *testing.T, subsMode shadowstate.Subscriptions) {
	workers := 2
	srv := testserver.Start(t, localiot.Options{})
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

// TestClientSubscriptionTraffic asserts what the broker sees: a persistent client
// subscribes to an operation's replies once, a per-request client around each request.
func TestClientSubscriptionTraffic(t *testing.T) {
	var mu sync.Mutex
	traffic := map[string][]string{}
	srv := testserver.Start(t, localiot.Options{Observe: func(e localiot.Event) {
		if e.Kind != localiot.EventSubscribe && e.Kind != localiot.EventUnsubscribe {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		for _, f := range e.Filters {
			traffic[e.ClientID] = append(traffic[e.ClientID], string(e.Kind)+" "+f)
		}
	}})
	run := func(id string, mode shadowstate.Subscriptions) []string {
		conn := dial(t, srv.Endpoints().Plain, func(cfg *transport.Config) { cfg.ClientID = id })
		c := newClient(t, conn, shadowstate.ClientOptions{Subscriptions: mode})
		h := mustShadow(t, c, "Traffic-1", "")
		for i := range 3 {
			if _, err := h.UpdateReported(t.Context(), map[string]any{"n": i}); err != nil {
				t.Fatal(err)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		got := slices.Clone(traffic[id])
		slices.Sort(got)
		return got
	}
	acc, rej := "$aws/things/Traffic-1/shadow/update/accepted", "$aws/things/Traffic-1/shadow/update/rejected"
	if got, want := run("persistent-client", shadowstate.Persistent), []string{"subscribe " + acc, "subscribe " + rej}; !slices.Equal(got, want) {
		t.Errorf("persistent client traffic %v, want %v", got, want)
	}
	var want []string
	for range 3 {
		want = append(want, "subscribe "+acc, "subscribe "+rej, "unsubscribe "+acc, "unsubscribe "+rej)
	}
	slices.Sort(want)
	if got := run("per-request-client", shadowstate.PerRequest); !slices.Equal(got, want) {
		t.Errorf("per-request client traffic %v, want %v", got, want)
	}
}
