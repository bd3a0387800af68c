package reconciler_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shadowsync/shadowsync/internal/testserver"
	"github.com/shadowsync/shadowsync/localiot"
	"github.com/shadowsync/shadowsync/reconciler"
	"github.com/shadowsync/shadowsync/shadowclient"
	"github.com/shadowsync/shadowsync/transport"
)

// A pool of 3 whose connections each hold more shadows than their filter budget
// moves to the wildcard filters. Shared (the default), the broker hands each message
// to one connection and the thing's own client handles it: an app's change and the
// report that follows bring 2 messages into the process, the documents message of
// each update. Unshared, each of the 3 connections receives both: 6. Every update
// converges and every report is confirmed either way.
func TestPoolDeliversEachMessageOnce(t *testing.T) {
	for _, tc := range []struct {
		unshared  bool
		perChange int
	}{{false, 2}, {true, 6}} {
		t.Run(fmt.Sprintf("unshared=%v", tc.unshared), func(t *testing.T) {
			srv := testserver.Start(t, localiot.Options{})
			endpoint := srv.Endpoints().Plain
			cfg := fastConfig(endpoint)
			cfg.ClientID = "once"
			m, err := reconciler.NewManager(cfg, reconciler.Options{Logger: testLogger(t), Pool: reconciler.Pool{Size: 3, Unshared: tc.unshared}})
			if err != nil {
				t.Fatal(err)
			}
			const n = 100 // about 33 a connection, over the budget of 24 filters
			things := make([]string, n)
			for i := range things {
				things[i] = fmt.Sprintf("once-%03d", i)
			}
			if _, err := reconciler.Echo(m, things...); err != nil {
				t.Fatal(err)
			}
			a := app(t, endpoint)
			for _, th := range things {
				if _, err := shadow(t, a, th).UpdateDesired(t.Context(), map[string]any{"n": 0}); err != nil {
					t.Fatal(err)
				}
			}
			conns := map[*transport.Conn]bool{}
			for _, th := range things {
				conns[m.PoolConn(th)] = true
			}
			if len(conns) != 3 {
				t.Fatalf("100 things on %d connections, want 3", len(conns))
			}
			received := func() (sum uint64) {
				for c := range conns {
					sum += c.Received()
				}
				return sum
			}
			reports := func() float64 {
				return counterWith(t, m.Registry(), "shadowsync_shadow_requests_total", map[string]string{"operation": "update", "outcome": "accepted"})
			}
			converged := func(v int, confirmed float64) func() error {
				return func() error {
					if got := reports(); got < confirmed {
						return fmt.Errorf("%v reports confirmed, want %v", got, confirmed)
					}
					for _, th := range things {
						rep, err := reportedOf(srv, th)
						if err != nil || fmt.Sprint(rep["n"]) != fmt.Sprint(v) {
							return fmt.Errorf("%s reports %v (%v), want n=%d", th, rep, err, v)
						}
					}
					return nil
				}
			}
			run(t, m)
			awaitPool(t, m)
			eventually(t, wait, converged(0, n))
			// Every report is confirmed by its documents message, so nothing of the
			// first round is still on its way.
			before := received()
			for _, th := range things {
				if _, err := shadow(t, a, th).UpdateDesired(t.Context(), map[string]any{"n": 1}); err != nil {
					t.Fatal(err)
				}
			}
			eventually(t, wait, converged(1, 2*n))
			want := uint64(tc.perChange * n)
			deadline := time.Now().Add(wait)
			for got := received() - before; got != want; got = received() - before {
				if got > want || time.Now().After(deadline) {
					t.Fatalf("the pool received %d messages for %d changes, want %d (%d a change)", got, n, want, tc.perChange)
				}
				time.Sleep(10 * time.Millisecond) // the polling interval of a bounded wait
			}
			for _, outcome := range []string{"timeout", "offline", "error", "rejected"} {
				if v := counterWith(t, m.Registry(), "shadowsync_shadow_requests_total", map[string]string{"outcome": outcome}); v != 0 {
					t.Errorf("%v shadow requests ended %s", v, outcome)
				}
			}
			if got := reports(); got != 2*n {
				t.Errorf("%v reports, want %d: one a change", got, 2*n)
			}
		})
	}
}

// The shadow clients' Pool is the manager's to set.
func TestManagerRefusesAClientPool(t *testing.T) {
	p, err := shadowclient.NewPool("mine", func(string, int) int { return 0 })
	if err != nil {
		t.Fatal(err)
	}
	_, err = reconciler.NewManager(transport.Config{}, reconciler.Options{Client: shadowclient.Options{Pool: p}})
	if err == nil || !strings.Contains(err.Error(), "Client.Pool") {
		t.Fatalf("NewManager with Client.Pool: %v, want an error naming Client.Pool", err)
	}
}
