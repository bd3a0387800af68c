package shadowclient_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shadowsync/shadowsync/internal/testserver"
	"github.com/shadowsync/shadowsync/localiot"
	"github.com/shadowsync/shadowsync/shadowclient"
	"github.com/shadowsync/shadowsync/transport"
)

// Concurrent requests on one shadow are all answered, in both subscription modes. In
// PerRequest mode the request that ends last unsubscribes from the reply topics
// while the next may be subscribing to them again: its UNSUBSCRIBE must reach the
// broker before that SUBSCRIBE, or the broker drops the subscription the client
// counts on and the next request's reply never comes (it times out). Persistent
// mode, which subscribes once, is the control.
func TestClientConcurrentRequestsOnOneShadowAreAnswered(t *testing.T) {
	for _, tc := range []struct {
		name string
		mode shadowclient.Subscriptions
	}{{"per-request", shadowclient.PerRequest}, {"persistent", shadowclient.Persistent}} {
		t.Run(tc.name, func(t *testing.T) { concurrentGets(t, tc.mode) })
	}
}

// concurrentGets runs two goroutines that Get one shadow in a loop for a few seconds
// and checks that every request was answered, and, in PerRequest mode, that the
// reply topics were unsubscribed and subscribed again many times meanwhile.
func concurrentGets(t *testing.T, mode shadowclient.Subscriptions) {
	const (
		workers = 2
		reply   = "$aws/things/pr-1/shadow/get/accepted"
	)
	var resubscribes atomic.Int32 // SUBSCRIBEs of reply that followed its UNSUBSCRIBE
	var unsubscribed atomic.Bool
	srv := testserver.Start(t, localiot.Options{Observe: func(e localiot.Event) {
		if !slices.Contains(e.Filters, reply) {
			return
		}
		switch e.Kind {
		case localiot.EventUnsubscribe:
			unsubscribed.Store(true)
		case localiot.EventSubscribe:
			if unsubscribed.Swap(false) {
				resubscribes.Add(1)
			}
		}
	}})
	conn := dial(t, srv.Endpoints().Plain, nil)
	c := newClient(t, conn, shadowclient.Options{Subscriptions: mode, Wildcards: shadowclient.WildcardsNever, Timeout: time.Second})
	h := mustShadow(t, c, "pr-1", "")
	if _, err := h.UpdateDesired(t.Context(), map[string]any{"x": 1}); err != nil {
		t.Fatal(err)
	}
	var answered, timedOut atomic.Int32
	var wg sync.WaitGroup
	end := time.Now().Add(6 * time.Second) // a stress run of fixed length, not a wait
	for range workers {
		wg.Go(func() {
			for time.Now().Before(end) {
				_, err := h.Get(t.Context())
				switch {
				case err == nil:
					answered.Add(1)
				case errors.Is(err, shadowclient.ErrRequestTimeout):
					timedOut.Add(1)
				default:
					t.Errorf("Get failed, and not for want of a reply: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	t.Logf("answered=%d timed out=%d resubscribes=%d", answered.Load(), timedOut.Load(), resubscribes.Load())
	if n := timedOut.Load(); n > 0 {
		t.Errorf("%d of %d requests got no reply within the client's Timeout", n, n+answered.Load())
	}
	if answered.Load() == 0 {
		t.Error("no request was answered")
	}
	if mode == shadowclient.PerRequest && resubscribes.Load() < 10 {
		t.Errorf("the reply topic was subscribed again after an UNSUBSCRIBE only %d times: the test did not exercise the race", resubscribes.Load())
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
	run := func(id string, mode shadowclient.Subscriptions) []string {
		conn := dial(t, srv.Endpoints().Plain, func(cfg *transport.Config) { cfg.ClientID = id })
		c := newClient(t, conn, shadowclient.Options{Subscriptions: mode})
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
	if got, want := run("persistent-client", shadowclient.Persistent), []string{"subscribe " + acc, "subscribe " + rej}; !slices.Equal(got, want) {
		t.Errorf("persistent client traffic %v, want %v", got, want)
	}
	var want []string
	for range 3 {
		want = append(want, "subscribe "+acc, "subscribe "+rej, "unsubscribe "+acc, "unsubscribe "+rej)
	}
	slices.Sort(want)
	if got := run("per-request-client", shadowclient.PerRequest); !slices.Equal(got, want) {
		t.Errorf("per-request client traffic %v, want %v", got, want)
	}
}

// Concurrent requests on many shadows under WildcardsAuto hold, between them, no
// more named filters than the budget at the broker, in both subscription modes. The
// client moves to the wildcard filters once (each is subscribed once), and then
// holds only them.
func TestClientWildcardSwitchKeepsToTheBudget(t *testing.T) {
	for _, tc := range []struct {
		name string
		mode shadowclient.Subscriptions
	}{{"per-request", shadowclient.PerRequest}, {"persistent", shadowclient.Persistent}} {
		t.Run(tc.name, func(t *testing.T) { switchUnderLoad(t, tc.mode) })
	}
}

func switchUnderLoad(t *testing.T, mode shadowclient.Subscriptions) {
	const (
		budget = 6
		id     = "budget-client"
	)
	var mu sync.Mutex
	named := map[string]bool{} // the named filters the broker holds for the client
	most := 0
	wildcards := map[string]int{} // SUBSCRIBEs of each wildcard filter
	srv := testserver.Start(t, localiot.Options{Observe: func(e localiot.Event) {
		if e.ClientID != id {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		for _, f := range e.Filters {
			switch {
			case strings.Contains(f, "+") && e.Kind == localiot.EventSubscribe:
				wildcards[f]++
			case e.Kind == localiot.EventSubscribe:
				named[f] = true
				most = max(most, len(named))
			case e.Kind == localiot.EventUnsubscribe:
				delete(named, f)
			}
		}
	}})
	conn := dial(t, srv.Endpoints().Plain, func(cfg *transport.Config) { cfg.ClientID = id })
	c := newClient(t, conn, shadowclient.Options{Subscriptions: mode, FilterBudget: budget})
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			h := mustShadow(t, c, fmt.Sprintf("Budget-%02d", i), "")
			if _, err := h.UpdateReported(t.Context(), map[string]any{"n": i}); err != nil {
				t.Errorf("update %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	for _, f := range c.HeldFilters() {
		if !strings.Contains(f, "+") {
			t.Errorf("after the switch the client still holds the named filter %s", f)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if most > budget {
		t.Errorf("the broker held %d named filters of the client at once, budget %d", most, budget)
	}
	if len(wildcards) == 0 {
		t.Error("the client never moved to the wildcard filters")
	}
	for f, n := range wildcards {
		if n != 1 {
			t.Errorf("wildcard filter %s subscribed %d times", f, n)
		}
	}
}
