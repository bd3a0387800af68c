package reconciler_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/shadowsync/shadowsync/internal/testserver"
	"github.com/shadowsync/shadowsync/localiot"
	"github.com/shadowsync/shadowsync/reconciler"
	"github.com/shadowsync/shadowsync/shadowclient"
	"github.com/shadowsync/shadowsync/shadowstate"
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
			obs := newPoolObserver()
			srv := testserver.Start(t, localiot.Options{Observe: obs.observe})
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
			requests := func(op string) float64 {
				return counterWith(t, m.Registry(), "shadowsync_shadow_requests_total", map[string]string{"operation": op})
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
			// Every connection holds over its budget, so once no request holds them
			// none still names a thing's documents topic in a filter of its own, at the
			// broker too (a filter let go while its connection came up once stayed
			// there, and its things' messages came twice).
			eventually(t, wait, func() error {
				for _, th := range things {
					topic := shadowstate.ID{Thing: th}.Topic(shadowstate.OpUpdate, shadowstate.Documents)
					if subs := obs.subscribers(topic); len(subs) > 0 {
						return fmt.Errorf("%s still subscribed at the broker by %v", topic, subs)
					}
				}
				return nil
			})
			// Every report is confirmed by its documents message, so no documents
			// message of the first round is still on its way. From now on, a handler of
			// the test on each connection's documents filter (the client's own filter:
			// no new subscription) counts what the connections receive of them.
			filter := "$aws/things/+/shadow/update/documents"
			if !tc.unshared {
				filter = "$share/shadowsync-pool-once/" + filter
			}
			var dmu sync.Mutex
			seenDocs := map[string]int{}
			for c := range conns {
				sub, err := c.Subscribe(t.Context(), filter, transport.HandlerFunc(func(_ context.Context, msg transport.Message) {
					var d shadowstate.DocumentsMessage
					_ = shadowstate.Unmarshal(msg.Payload, &d)
					dmu.Lock()
					seenDocs[fmt.Sprintf("%s v%d", msg.Topic, d.Current.Version)]++
					dmu.Unlock()
				}), transport.QoS(1))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = sub.Unsubscribe(context.Background()) })
			}
			before, readsBefore := received(), requests("get")
			for _, th := range things {
				if _, err := shadow(t, a, th).UpdateDesired(t.Context(), map[string]any{"n": 1}); err != nil {
					t.Fatal(err)
				}
			}
			eventually(t, wait, converged(1, 2*n))
			// Each change's 2 documents messages arrive once each (on each connection,
			// unshared).
			eventually(t, wait, func() error {
				dmu.Lock()
				defer dmu.Unlock()
				for k, v := range seenDocs {
					if want := tc.perChange / 2; v != want {
						return fmt.Errorf("%s delivered %d times, want %d", k, v, want)
					}
				}
				if len(seenDocs) != 2*n {
					return fmt.Errorf("%d documents messages of %d changes, want %d", len(seenDocs), n, 2*n)
				}
				return nil
			})
			want := uint64(tc.perChange * n)
			// All that the connections received (Conn.Received): the same, plus the
			// reply of each re-read still under way when the round began (each
			// connection's coming online asks for one, and under load they outlast the
			// first round), once shared, on each connection unshared.
			eventually(t, wait, func() error {
				got, reads := received()-before, uint64(requests("get")-readsBefore)
				if got < want || got > want+reads*uint64(tc.perChange/2) {
					return fmt.Errorf("the pool received %d messages for %d changes and %d re-reads, want %d (%d a change) and %d a re-read",
						got, n, reads, want, tc.perChange, tc.perChange/2)
				}
				return nil
			})
			for _, outcome := range []string{"timeout", "error", "rejected"} {
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
