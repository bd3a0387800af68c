package reconciler_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shadowsync/shadowsync/internal/testserver"
	"github.com/shadowsync/shadowsync/localiot"
	"github.com/shadowsync/shadowsync/reconciler"
	"github.com/shadowsync/shadowsync/shadowclient"
	"github.com/shadowsync/shadowsync/shadowstate"
	"github.com/shadowsync/shadowsync/transport"
)

// Bad pool options fail NewManager with an error naming the field.
func TestPoolOptionsInvalid(t *testing.T) {
	for _, tc := range []struct {
		name string
		pool reconciler.Pool
		cfg  transport.Config
		want string
	}{
		{"negative size", reconciler.Pool{Size: -1}, transport.Config{}, "Pool.Size is negative"},
		{"huge size", reconciler.Pool{Size: 5000}, transport.Config{}, "at most 1000 connections"},
		{"size and auto", reconciler.Pool{Size: 3, Auto: true, ChangeEvery: time.Second}, transport.Config{}, "set Size or Auto, not both"},
		{"auto without rate", reconciler.Pool{Auto: true}, transport.Config{}, "Pool.Auto needs a positive ChangeEvery"},
		{"auto negative rate", reconciler.Pool{Auto: true, ChangeEvery: -time.Second}, transport.Config{}, "Pool.Auto needs a positive ChangeEvery"},
		{"rate without auto", reconciler.Pool{Size: 2, ChangeEvery: time.Second}, transport.Config{}, "set Auto, or leave them zero"},
		{"negative fleet shadows", reconciler.Pool{Auto: true, ChangeEvery: time.Second, FleetShadows: -1}, transport.Config{}, "must not be negative"},
		{"pooled client ID too long", reconciler.Pool{Size: 2}, transport.Config{ClientID: strings.Repeat("c", 128)}, "pooled connection 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := reconciler.NewManager(tc.cfg, reconciler.Options{Pool: tc.pool})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewManager: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// poolObserver records, from the broker's side, which client subscribed to which
// filters, and counts the GET requests of every thing.
type poolObserver struct {
	mu     sync.Mutex
	subs   map[string][]string // client ID → filters subscribed
	online map[string]int      // client ID → connects
}

func newPoolObserver() *poolObserver {
	return &poolObserver{subs: map[string][]string{}, online: map[string]int{}}
}

func (o *poolObserver) observe(e localiot.Event) {
	o.mu.Lock()
	defer o.mu.Unlock()
	switch e.Kind {
	case localiot.EventSubscribe:
		o.subs[e.ClientID] = append(o.subs[e.ClientID], e.Filters...)
	case localiot.EventConnect:
		o.online[e.ClientID]++
	}
}

// subscribers returns the client IDs that subscribed to filter.
func (o *poolObserver) subscribers(filter string) []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var ids []string
	for id, fs := range o.subs {
		if slices.Contains(fs, filter) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// A pool of three: the primary keeps the configured client ID and is Conn, the others
// are <id>-1 and <id>-2; each thing's classic and named shadows are subscribed on
// the one connection its name hashes to, the same one PoolConn names, and on no
// other.
func TestPoolRoutesThingsToOneConnection(t *testing.T) {
	obs := newPoolObserver()
	srv := testserver.Start(t, localiot.Options{Observe: obs.observe})
	cfg := fastConfig(srv.Endpoints().Plain)
	cfg.ClientID = "gw"
	m, err := reconciler.NewManager(cfg, reconciler.Options{Logger: testLogger(t), Pool: reconciler.Pool{Size: 3}})
	if err != nil {
		t.Fatal(err)
	}
	if m.PoolSize() != 3 {
		t.Fatalf("PoolSize = %d, want 3", m.PoolSize())
	}
	if m.Conn().ClientID() != "gw" {
		t.Errorf("Conn().ClientID() = %q, want the configured gw", m.Conn().ClientID())
	}
	// Few things: every connection stays under its filter budget and names each
	// shadow in its own filter, so the broker shows where each one went.
	things := []string{"lamp-a", "lamp-b", "lamp-c", "lamp-d", "lamp-e", "lamp-f"}
	if _, err := reconciler.Echo(m, things...); err != nil {
		t.Fatal(err)
	}
	if _, err := reconciler.Register(m, reconciler.ControllerOptions{Name: "cfg", Things: things, Shadow: "cfg"},
		reconciler.ReconcilerFunc[shadowstate.Object](func(context.Context, reconciler.Request[shadowstate.Object]) (reconciler.Result, error) {
			return reconciler.Result{}, nil
		})); err != nil {
		t.Fatal(err)
	}
	run(t, m)
	used := map[string]bool{}
	for _, th := range things {
		want := m.PoolConn(th).ClientID()
		used[want] = true
		for _, id := range []shadowstate.ID{{Thing: th}, {Thing: th, Name: "cfg"}} {
			filter := id.Topic(shadowstate.OpUpdate, shadowstate.Documents)
			eventually(t, wait, func() error {
				if got := obs.subscribers(filter); !slices.Equal(got, []string{want}) {
					return fmt.Errorf("%s subscribed by %v, want only %s", filter, got, want)
				}
				return nil
			})
		}
		if m.PoolConn(th) != m.PoolConn(th) {
			t.Errorf("PoolConn(%s) changes between calls", th)
		}
	}
	for id := range used {
		if id != "gw" && id != "gw-1" && id != "gw-2" {
			t.Errorf("client ID %q: want gw, gw-1 or gw-2", id)
		}
	}
	if len(used) < 2 {
		t.Errorf("six things all on %v: the hash does not spread them", used)
	}
	// Each connection counts in the conn-labelled metrics.
	eventually(t, wait, func() error {
		for _, c := range []string{"0", "1", "2"} {
			if v := gaugeWith(t, m, "shadowsync_connected", map[string]string{"conn": c}); v != 1 {
				return fmt.Errorf("shadowsync_connected{conn=%q} = %v", c, v)
			}
		}
		return nil
	})
}

// gaugeWith returns the value of gauge name's series whose labels include labels.
func gaugeWith(t *testing.T, m *reconciler.Manager, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, g := range mf.GetMetric() {
			for _, l := range g.GetLabel() {
				if v, ok := labels[l.GetName()]; ok && v != l.GetValue() {
					continue series
				}
			}
			return g.GetGauge().GetValue()
		}
	}
	return -1
}

// getCounter counts, as an operator client subscribed to every GET request, the
// shadow reads of each thing, and keeps the things read in the order of the reads.
type getCounter struct {
	mu    sync.Mutex
	n     map[string]int
	order []string
}

func countGets(t *testing.T, endpoint string) *getCounter {
	t.Helper()
	g := &getCounter{n: map[string]int{}}
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	conn, err := transport.Dial(ctx, fastConfig(endpoint))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		_ = conn.Close(ctx)
	})
	if _, err := conn.Subscribe(ctx, "$aws/things/+/shadow/get", transport.HandlerFunc(func(_ context.Context, m transport.Message) {
		id, _, _, ok := shadowstate.ParseTopic(m.Topic)
		if ok {
			g.mu.Lock()
			g.n[id.Thing]++
			g.order = append(g.order, id.Thing)
			g.mu.Unlock()
		}
	})); err != nil {
		t.Fatal(err)
	}
	return g
}

// quiet returns the reads counted once no shadow has been read for 500 ms.
func (g *getCounter) quiet(t *testing.T) map[string]int {
	t.Helper()
	last, since := g.snapshot(), time.Now()
	eventually(t, 2*wait, func() error {
		if now := g.snapshot(); !maps.Equal(now, last) {
			last, since = now, time.Now()
		}
		if time.Since(since) < 500*time.Millisecond {
			return errors.New("shadows are still being read")
		}
		return nil
	})
	return last
}

// reads returns how many reads were counted, and the things read from the
// from-th read on, in order.
func (g *getCounter) reads(from int) (int, []string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.order), slices.Clone(g.order[min(from, len(g.order)):])
}

func (g *getCounter) snapshot() map[string]int {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make(map[string]int, len(g.n))
	for k, v := range g.n {
		out[k] = v
	}
	return out
}

// kick takes over clientID's connection, as AWS IoT does when a second connection
// uses a client ID: the broker closes the first. It sends a bare MQTT 3.1.1 CONNECT,
// waits for the CONNACK, and hangs up.
func kick(t *testing.T, endpoint, clientID string) {
	t.Helper()
	u, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialTimeout("tcp", u.Host, wait)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(wait))
	body := append([]byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, 0, byte(len(clientID))}, clientID...)
	if _, err := c.Write(append([]byte{0x10, byte(len(body))}, body...)); err != nil {
		t.Fatal(err)
	}
	ack := make([]byte, 4)
	if _, err := c.Read(ack); err != nil || ack[0] != 0x20 || ack[3] != 0 {
		t.Fatalf("CONNACK %x, %v", ack, err)
	}
}

// Cutting one pooled connection re-reads only the shadows routed to it: the other
// connections stay up and their shadows are not read again.
//
// With 90 things the connections hold more shadows than their filter budget and use
// the pool's shared wildcard subscriptions: each message reaches one connection, the
// cut one included, and after the reconnect every change, of any connection's
// things, still converges.
func TestPoolReconnectRereadsOnlyItsShadows(t *testing.T) {
	for _, n := range []int{30, 90} {
		t.Run(fmt.Sprintf("things=%d", n), func(t *testing.T) { poolReconnect(t, n) })
	}
}

func poolReconnect(t *testing.T, count int) {
	srv := testserver.Start(t, localiot.Options{})
	endpoint := srv.Endpoints().Plain
	gets := countGets(t, endpoint)
	cfg := fastConfig(endpoint)
	cfg.ClientID = "cut"
	m, err := reconciler.NewManager(cfg, reconciler.Options{Logger: testLogger(t), Pool: reconciler.Pool{Size: 3}})
	if err != nil {
		t.Fatal(err)
	}
	things := make([]string, count)
	for i := range things {
		things[i] = fmt.Sprintf("cut-%02d", i)
	}
	if _, err := reconciler.Echo(m, things...); err != nil {
		t.Fatal(err)
	}
	a := app(t, endpoint)
	for _, th := range things {
		if _, err := shadow(t, a, th).UpdateDesired(t.Context(), map[string]any{"n": 1}); err != nil {
			t.Fatal(err)
		}
	}
	run(t, m)
	converged := func() error {
		for _, th := range things {
			rep, err := reportedOf(srv, th)
			if err != nil {
				return err
			}
			if fmt.Sprint(rep["n"]) != "1" {
				return fmt.Errorf("%s reports %v", th, rep)
			}
		}
		return nil
	}
	eventually(t, wait, converged)
	eventually(t, wait, func() error {
		n := gets.snapshot()
		for _, th := range things {
			if n[th] == 0 {
				return fmt.Errorf("%s not read yet", th)
			}
		}
		return nil
	})
	before := gets.snapshot()
	victim := m.PoolConn(things[0])
	var mine, others []string
	for _, th := range things {
		if m.PoolConn(th) == victim {
			mine = append(mine, th)
		} else {
			others = append(others, th)
		}
	}
	if len(others) == 0 {
		t.Fatal("every thing on one connection")
	}
	victimLabel := "0"
	if victim != m.Conn() {
		victimLabel = strings.TrimPrefix(victim.ClientID(), "cut-")
	}
	kick(t, endpoint, victim.ClientID())
	eventually(t, wait, func() error {
		if n := counterWith(t, m.Registry(), "shadowsync_reconnects_total", map[string]string{"conn": victimLabel}); n < 1 {
			return fmt.Errorf("conn %s: %v reconnects", victimLabel, n)
		}
		n := gets.snapshot()
		for _, th := range mine {
			if n[th] <= before[th] {
				return fmt.Errorf("%s, on the cut connection, not read again (%d reads)", th, n[th])
			}
		}
		return nil
	})
	// The others were read before the cut and not since; they stay that way.
	consistently(t, 300*time.Millisecond, func() error {
		n := gets.snapshot()
		for _, th := range others {
			if n[th] != before[th] {
				return fmt.Errorf("%s, on another connection, read %d times, %d before the cut", th, n[th], before[th])
			}
		}
		return nil
	})
	if n := counterWith(t, m.Registry(), "shadowsync_reconnects_total", nil); n != 1 {
		t.Errorf("shadowsync_reconnects_total = %v in all, want 1: only the cut connection", n)
	}
	// And the pool still works: a change to every thing, of the cut connection and
	// of the others, converges.
	desireAll(t, srv, a, 2, things...)
}

// A pooled connection's re-read after its reconnect does not wait for another
// connection's: each connection re-reads its own shadows, paced at its own publish
// cap. With the connections capped at 8 publishes a second, re-reading a
// connection's dozen shadows takes about 1.7 s; the second connection, cut just
// after the first began its re-read, starts its own at once.
func TestPoolConnectionsReReadIndependently(t *testing.T) {
	srv := testserver.Start(t, localiot.Options{})
	endpoint := srv.Endpoints().Plain
	gets := countGets(t, endpoint)
	cfg := fastConfig(endpoint)
	cfg.ClientID = "lanes"
	cfg.MaxPublishRate = 8
	m, err := reconciler.NewManager(cfg, reconciler.Options{Logger: testLogger(t), Pool: reconciler.Pool{Size: 2}})
	if err != nil {
		t.Fatal(err)
	}
	things := make([]string, 24)
	for i := range things {
		things[i] = fmt.Sprintf("lane-%02d", i)
	}
	if _, err := reconciler.Echo(m, things...); err != nil {
		t.Fatal(err)
	}
	run(t, m)
	awaitPool(t, m)
	first := m.PoolConn(things[0])
	on := map[string]*transport.Conn{}
	var second *transport.Conn
	for _, th := range things {
		on[th] = m.PoolConn(th)
		if on[th] != first {
			second = on[th]
		}
	}
	if second == nil {
		t.Fatal("every thing on one connection")
	}
	// The start's reads (the shadows do not exist: each read is one 404) are over.
	start := gets.quiet(t)
	for _, th := range things {
		if start[th] != 1 {
			t.Fatalf("%s read %d times at start, want 1", th, start[th])
		}
	}
	from, _ := gets.reads(0)

	kick(t, endpoint, first.ClientID())
	eventually(t, wait, func() error {
		if _, read := gets.reads(from); len(read) == 0 {
			return errors.New("the first connection's re-read has not begun")
		}
		return nil
	})
	kick(t, endpoint, second.ClientID())
	// Both connections' shadows are read again, once each; the second's re-read
	// begins before the first's ends.
	eventually(t, 2*wait, func() error {
		_, read := gets.reads(from)
		if len(read) < len(things) {
			return fmt.Errorf("%d of %d shadows read again", len(read), len(things))
		}
		return nil
	})
	_, read := gets.reads(from)
	count := map[string]int{}
	lastFirst, firstSecond := -1, -1
	for i, th := range read {
		count[th]++
		switch {
		case on[th] == first:
			lastFirst = i
		case firstSecond < 0:
			firstSecond = i
		}
	}
	for _, th := range things {
		if count[th] != 1 {
			t.Errorf("%s read %d times after the cuts, want 1", th, count[th])
		}
	}
	if firstSecond > lastFirst {
		t.Errorf("the second connection's re-read began (read %d) after the first's ended (read %d): it waited for it; reads in order: %v",
			firstSecond, lastFirst, read)
	}
}

// desireAll sets n as desired state of every thing through a, and waits until each
// of them reports it.
func desireAll(t *testing.T, srv *localiot.Server, a *shadowclient.Client, n int, things ...string) {
	t.Helper()
	for _, th := range things {
		if _, err := shadow(t, a, th).UpdateDesired(t.Context(), map[string]any{"n": n}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, wait, func() error {
		for _, th := range things {
			rep, err := reportedOf(srv, th)
			if err != nil || fmt.Sprint(rep["n"]) != fmt.Sprint(n) {
				return fmt.Errorf("n = %d: %s reports %v (%v)", n, th, rep, err)
			}
		}
		return nil
	})
}

// refusals counts what localiot refused or dropped, from its log: throttled publishes
// (logged at Debug), publishes and subscriptions the rules refused, and requests
// answered 429.
type refusals struct {
	n    atomic.Int64
	last atomic.Value // string
}

func (r *refusals) Enabled(context.Context, slog.Level) bool { return true }
func (r *refusals) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *refusals) WithGroup(string) slog.Handler            { return r }
func (r *refusals) Handle(_ context.Context, rec slog.Record) error {
	if strings.HasPrefix(rec.Message, "publish dropped") || strings.HasPrefix(rec.Message, "subscribe refused") ||
		strings.Contains(rec.Message, "429") || strings.HasPrefix(rec.Message, "connect refused") {
		r.n.Add(1)
		r.last.Store(rec.Message)
	}
	return nil
}

// The test: things each changed once every ChangeEvery, more reports per
// second than one connection's quota, with localiot enforcing AWS's 100 publishes per
// second per connection and the manager's connections capped at the same. An Auto
// pool sized from the load converges every round; localiot drops nothing, and after
// the warm-up round no pooled connection's cap delays a publish (the pool has
// room). By default 300 things every 2 s (150 reports per second, two connections);
// SHADOWSYNC_SOAK=1 runs the size, 2,000 things every 4 s (500 per second).
func TestPoolCarriesMoreThanOneConnectionsQuota(t *testing.T) {
	things, every, rounds := 300, 2*time.Second, 3
	if os.Getenv("SHADOWSYNC_SOAK") != "" {
		things, every = 2000, 4*time.Second
	}
	refused := &refusals{}
	srv := testserver.Start(t, localiot.Options{Limits: localiot.Limits{MaxPublishRate: 100}, Logger: slog.New(refused)})
	endpoint := srv.Endpoints().Plain
	cfg := fastConfig(endpoint)
	cfg.MaxPublishRate = 100
	cfg.ClientID = "load"
	m, err := reconciler.NewManager(cfg, reconciler.Options{Logger: testLogger(t), Pool: reconciler.Pool{Auto: true, ChangeEvery: every}})
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, things)
	for i := range names {
		names[i] = fmt.Sprintf("load-%04d", i)
	}
	// The echo with 16 reconciles at once rather than reconciler.Echo's 256: with 256
	// in flight, changes that arrive bunched (the machine busy for a moment) queue at
	// a connection's cap rather than in the work queue — delayed all the same, never
	// dropped — and this test's proof that the pool has room is that no cap ever
	// delays a publish.
	if _, err := reconciler.Register(m, reconciler.ControllerOptions{Name: "echo", Things: names, MaxConcurrentReconciles: 16},
		reconciler.ReconcilerFunc[shadowstate.Object](func(_ context.Context, req reconciler.Request[shadowstate.Object]) (reconciler.Result, error) {
			*req.Reported = req.Desired
			return reconciler.Result{}, nil
		})); err != nil {
		t.Fatal(err)
	}
	run(t, m)
	rate := float64(things) / every.Seconds()
	wantSize := int((rate + 79.999) / 80)
	eventually(t, wait, func() error {
		if m.PoolSize() != wantSize {
			return fmt.Errorf("pool of %d, want %d for %v reports per second", m.PoolSize(), wantSize, rate)
		}
		return nil
	})
	t.Logf("%d things changed every %v: %.0f reports/s on a pool of %d", things, every, rate, m.PoolSize())
	// The start's reads come first (paced under each connection's cap).
	eventually(t, 4*wait, func() error {
		if n := counterWith(t, m.Registry(), "shadowsync_shadow_requests_total", map[string]string{"operation": "get"}); n < float64(things) {
			return fmt.Errorf("%v of %d shadows read", n, things)
		}
		return nil
	})

	// The apps: enough connections that none publishes over 80 a second either.
	appConns := wantSize + 1
	apps := make([]*transport.Conn, appConns)
	for i := range apps {
		acfg := fastConfig(endpoint)
		acfg.MaxPublishRate = 100
		ctx, cancel := context.WithTimeout(t.Context(), wait)
		c, err := transport.Dial(ctx, acfg)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			_ = c.Close(ctx)
		})
		apps[i] = c
	}
	throttled := func() float64 {
		return counterWith(t, m.Registry(), "shadowsync_publishes_throttled_total", nil)
	}
	for round := 1; round <= rounds; round++ {
		// Each app changes its share of the things, evenly spread over ChangeEvery.
		inParallel(t, len(apps), func(i int) error {
			c := apps[i]
			var mine []string
			for j := i; j < things; j += appConns {
				mine = append(mine, names[j])
			}
			tick := time.NewTicker(every / time.Duration(len(mine)))
			defer tick.Stop()
			payload := []byte(fmt.Sprintf(`{"state":{"desired":{"n":%d}}}`, round))
			for _, th := range mine {
				<-tick.C
				if err := c.Publish(t.Context(), shadowstate.ID{Thing: th}.Topic(shadowstate.OpUpdate, shadowstate.Request), payload, transport.QoS(1)); err != nil {
					return err
				}
			}
			return nil
		})
		eventually(t, 4*wait, func() error {
			for _, th := range names {
				s, err := srv.Shadow(shadowstate.ID{Thing: th})
				if err != nil {
					return err
				}
				var rep struct{ N int }
				raw, _ := json.Marshal(s.Reported)
				_ = json.Unmarshal(raw, &rep)
				if rep.N != round {
					return fmt.Errorf("round %d: %s reports %v", round, th, s.Reported)
				}
			}
			return nil
		})
	}
	if n := refused.n.Load(); n != 0 {
		t.Errorf("localiot refused or dropped %d messages; the last: %v", n, refused.last.Load())
	}
	if n := throttled(); n != 0 {
		t.Errorf("the pooled connections' caps delayed %v publishes: the pool is too small for the load", n)
	}
	for _, outcome := range []string{"rejected", "timeout"} {
		if n := counterWith(t, m.Registry(), "shadowsync_shadow_requests_total", map[string]string{"operation": "update", "outcome": outcome}); n != 0 {
			t.Errorf("%v reports %s", n, outcome)
		}
	}
}

// awaitPool waits until every connection of m's pool is online (and so subscribed).
func awaitPool(t *testing.T, m *reconciler.Manager) {
	t.Helper()
	eventually(t, wait, func() error {
		for i := range m.PoolSize() {
			if v := gaugeWith(t, m, "shadowsync_connected", map[string]string{"conn": fmt.Sprint(i)}); v != 1 {
				return fmt.Errorf("pooled connection %d not online", i)
			}
		}
		return nil
	})
}

// Fleet mode on a pool: unshared, every pooled connection watches the fleet and takes
// only its own things' events, so each change is reconciled once; shared, every
// pooled connection joins the group. Both converge.
func TestPoolFleet(t *testing.T) {
	for _, group := range []string{"", "pooled"} {
		t.Run("group="+group, func(t *testing.T) {
			srv := testserver.Start(t, localiot.Options{})
			m, err := reconciler.NewManager(fastConfig(srv.Endpoints().Plain), reconciler.Options{Logger: testLogger(t), Pool: reconciler.Pool{Size: 3}})
			if err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			calls := map[string]int{}
			if _, err := reconciler.Register(m, reconciler.ControllerOptions{
				Fleet: &reconciler.Fleet{Prefix: "pf-", Group: group}, MaxConcurrentReconciles: 4,
			}, reconciler.ReconcilerFunc[shadowstate.Object](func(_ context.Context, req reconciler.Request[shadowstate.Object]) (reconciler.Result, error) {
				mu.Lock()
				calls[req.Thing]++
				mu.Unlock()
				*req.Reported = req.Desired
				return reconciler.Result{}, nil
			})); err != nil {
				t.Fatal(err)
			}
			run(t, m)
			awaitPool(t, m)
			a := app(t, srv.Endpoints().Plain)
			const n = 30
			for i := range n {
				if _, err := shadow(t, a, fmt.Sprintf("pf-%02d", i)).UpdateDesired(t.Context(), map[string]any{"n": i}); err != nil {
					t.Fatal(err)
				}
			}
			eventually(t, wait, func() error {
				for i := range n {
					rep, err := reportedOf(srv, fmt.Sprintf("pf-%02d", i))
					if err != nil || fmt.Sprint(rep["n"]) != fmt.Sprint(i) {
						return fmt.Errorf("pf-%02d reports %v (%v)", i, rep, err)
					}
				}
				return nil
			})
			if group != "" {
				return // a shared fleet may reconcile a change twice (delta, then documents): versions keep it right
			}
			mu.Lock()
			defer mu.Unlock()
			for th, c := range calls {
				if c != 1 {
					t.Errorf("%s reconciled %d times for one change: more than one pooled connection took its events", th, c)
				}
			}
		})
	}
}

// gatewayPool starts localiot (with opts) and a manager with client ID gw on a pool
// of three connections, echoing n things named prefix-00, prefix-01, ...
func gatewayPool(t *testing.T, opts localiot.Options, prefix string, n int) (*localiot.Server, *reconciler.Manager, []string) {
	t.Helper()
	srv := testserver.Start(t, opts)
	cfg := fastConfig(srv.Endpoints().Plain)
	cfg.ClientID = "gw"
	m, err := reconciler.NewManager(cfg, reconciler.Options{Logger: testLogger(t), Pool: reconciler.Pool{Size: 3}})
	if err != nil {
		t.Fatal(err)
	}
	things := make([]string, n)
	for i := range things {
		things[i] = fmt.Sprintf("%s-%02d", prefix, i)
	}
	if _, err := reconciler.Echo(m, things...); err != nil {
		t.Fatal(err)
	}
	return srv, m, things
}

// Each pooled connection's shadow requests are counted under its own conn label, the
// label of its connection metrics: the reports of the things routed to a connection
// are that connection's, and together they are every report.
func TestPoolCountsRequestsPerConnection(t *testing.T) {
	srv, m, things := gatewayPool(t, localiot.Options{}, "meter", 12)
	run(t, m)
	// Pooled connection i has client ID gw-i (gw for 0) and conn label i.
	want := map[string]float64{}
	for _, th := range things {
		label := "0"
		if id := m.PoolConn(th).ClientID(); id != "gw" {
			label = strings.TrimPrefix(id, "gw-")
		}
		want[label]++
	}
	if len(want) < 2 {
		t.Fatalf("12 things on %d connection(s) of 3; the test needs at least two", len(want))
	}
	c := app(t, srv.Endpoints().Plain)
	for _, th := range things {
		if _, err := shadow(t, c, th).UpdateDesired(t.Context(), map[string]any{"on": true}); err != nil {
			t.Fatal(err)
		}
	}
	reports := func(label string) float64 {
		return counterWith(t, m.Registry(), "shadowsync_shadow_requests_total", map[string]string{"conn": label, "operation": "update", "outcome": "accepted"})
	}
	eventually(t, wait, func() error {
		for _, label := range []string{"0", "1", "2"} {
			if got := reports(label); got != want[label] {
				return fmt.Errorf("conn %s made %v accepted reports, want %v (its things')", label, got, want[label])
			}
		}
		return nil
	})
	if total := counterWith(t, m.Registry(), "shadowsync_shadow_requests_total", map[string]string{"operation": "update", "outcome": "accepted"}); total != float64(len(things)) {
		t.Errorf("%v accepted reports in all, want %d", total, len(things))
	}
	// The latency histogram carries the same label.
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "shadowsync_shadow_request_duration_seconds" {
			continue
		}
		for _, s := range mf.GetMetric() {
			labelled := false
			for _, l := range s.GetLabel() {
				labelled = labelled || l.GetName() == "conn"
			}
			if !labelled {
				t.Errorf("a request duration series without a conn label: %v", s.GetLabel())
			}
		}
	}
}

// Manager.Client serves shadows no controller manages, whichever connection of a
// pool their thing is routed to: its reads and updates are answered, and its
// callbacks get the application's changes, below the filter budget (named filters)
// and above it (the pool's shared wildcard filters) alike. Before, the request of a
// thing routed to another connection went out on the primary while the pool handed
// its reply to the other connection's client, and timed out.
func TestPoolClientServesUnmanagedThings(t *testing.T) {
	for _, managed := range []int{3, 90} {
		t.Run(fmt.Sprintf("managed=%d", managed), func(t *testing.T) {
			srv, m, _ := gatewayPool(t, localiot.Options{}, "lamp", managed)
			run(t, m)
			eventually(t, wait, func() error {
				for _, th := range []string{"other-0", "other-1", "other-2"} {
					if !m.PoolConn(th).IsOnline() {
						return fmt.Errorf("%s's connection is offline", th)
					}
				}
				return nil
			})
			app := app(t, srv.Endpoints().Plain)
			conns := map[string]bool{}
			for i := range 6 {
				th := fmt.Sprintf("other-%d", i)
				conns[m.PoolConn(th).ClientID()] = true
				h := shadow(t, m.Client(), th)
				acc, err := h.UpdateReported(t.Context(), map[string]int{"n": i})
				if err != nil {
					t.Fatalf("UpdateReported %s through Client (routed to %s): %v", th, m.PoolConn(th).ClientID(), err)
				}
				docs := make(chan int64, 4)
				if _, err := h.OnDocuments(t.Context(), func(_ context.Context, d *shadowstate.DocumentsMessage) { docs <- d.Current.Version }); err != nil {
					t.Fatal(err)
				}
				changed, err := shadow(t, app, th).UpdateDesired(t.Context(), map[string]int{"n": i + 1})
				if err != nil {
					t.Fatal(err)
				}
				if changed.Version != acc.Version+1 {
					t.Fatalf("%s: the app's change is version %d, want %d", th, changed.Version, acc.Version+1)
				}
				for v := recv(t, docs, th+"'s documents message of the app's change"); v != changed.Version; v = recv(t, docs, th+"'s documents message of the app's change") {
				}
				doc, err := h.Get(t.Context())
				if err != nil || doc.Version != changed.Version {
					t.Fatalf("Get %s through Client = version %v, %v; want %d", th, doc, err, changed.Version)
				}
			}
			if len(conns) < 2 {
				t.Fatalf("the things are all routed to %v: the test shows nothing", conns)
			}
		})
	}
}

// An Auto pool grows as AddThing brings more shadows than its connections' quota
// carries (here, with localiot enforcing AWS's 100 publishes per second: 80 shadows
// changing every second fill a connection). Things already routed keep their
// connection; things added after a growth go to the least loaded connection, so
// the new connections fill first. Every thing converges, nothing is refused or in
// conflict, nothing is throttled once the added things' first reads are done, a fleet controller watches the new connections too, a cut new connection
// re-reads only its own shadows, and a thing the application already used through
// Client stays where its handle is.
func TestPoolAutoGrowsWithAddThing(t *testing.T) {
	refused := &refusals{}
	srv := testserver.Start(t, localiot.Options{Limits: localiot.Limits{MaxPublishRate: 100}, Logger: slog.New(refused)})
	endpoint := srv.Endpoints().Plain
	gets := countGets(t, endpoint)
	cfg := fastConfig(endpoint)
	cfg.MaxPublishRate = 100
	cfg.ClientID = "grow"
	m, err := reconciler.NewManager(cfg, reconciler.Options{Logger: testLogger(t), Pool: reconciler.Pool{Auto: true, ChangeEvery: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	name := func(i int) string { return fmt.Sprintf("g-%03d", i) }
	var first []string
	for i := range 40 {
		first = append(first, name(i))
	}
	echo, err := reconciler.Register(m, reconciler.ControllerOptions{Name: "echo", Things: first, MaxConcurrentReconciles: 16},
		reconciler.ReconcilerFunc[shadowstate.Object](func(_ context.Context, req reconciler.Request[shadowstate.Object]) (reconciler.Result, error) {
			*req.Reported = req.Desired
			return reconciler.Result{}, nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reconciler.Register(m, reconciler.ControllerOptions{Name: "fleet", Fleet: &reconciler.Fleet{Prefix: "pf-"}, MaxConcurrentReconciles: 4},
		reconciler.ReconcilerFunc[shadowstate.Object](func(_ context.Context, req reconciler.Request[shadowstate.Object]) (reconciler.Result, error) {
			*req.Reported = req.Desired
			return reconciler.Result{}, nil
		})); err != nil {
		t.Fatal(err)
	}
	run(t, m)
	awaitPool(t, m)
	if m.PoolSize() != 1 {
		t.Fatalf("40 shadows every second: a pool of %d, want 1", m.PoolSize())
	}
	for i := 40; i < 200; i++ {
		if err := echo.AddThing(t.Context(), name(i)); err != nil {
			t.Fatal(err)
		}
	}
	// 200 shadows every second need 200 / 80 → 3 connections: one more at the 81st
	// shadow, another at the 161st. The first 80 hash over the one connection; 81–160
	// go to the new, empty one; 161–200 to the third.
	if m.PoolSize() != 3 {
		t.Fatalf("200 shadows every second: a pool of %d, want 3", m.PoolSize())
	}
	awaitPool(t, m)
	perConn := map[string]int{}
	for i := range 200 {
		perConn[m.PoolConn(name(i)).ClientID()]++
	}
	if want := map[string]int{"grow": 80, "grow-1": 80, "grow-2": 40}; !maps.Equal(perConn, want) {
		t.Errorf("things per connection %v, want %v", perConn, want)
	}
	for i := range 80 {
		if id := m.PoolConn(name(i)).ClientID(); id != "grow" {
			t.Fatalf("%s, routed before the pool grew, moved to %s", name(i), id)
		}
	}

	// An application change to every thing, and to a fleet thing routed to each
	// connection, converges; the app publishes under its own connection's quota.
	acfg := fastConfig(endpoint)
	acfg.MaxPublishRate = 100
	a := appWith(t, acfg)
	change := func(round int, things ...string) { t.Helper(); desireAll(t, srv, a, round, things...) }
	var all []string
	for i := range 200 {
		all = append(all, name(i))
	}
	fleet := map[string]string{}
	for i := 0; len(fleet) < 3 && i < 100; i++ {
		th := fmt.Sprintf("pf-%02d", i)
		if id := m.PoolConn(th).ClientID(); fleet[id] == "" {
			fleet[id] = th
		}
	}
	change(1, append(all, slices.Collect(maps.Values(fleet))...)...)

	// A cut of the newest connection re-reads only its own shadows. (Each new
	// connection's first connect re-read its shadows, paced under its cap: once those
	// reads are over.)
	before := gets.quiet(t)
	// Adding 160 things at once sends their first reads in a burst, which the caps
	// pace (and count); from here on, the grown pool has room for the load.
	throttled := counterWith(t, m.Registry(), "shadowsync_publishes_throttled_total", nil)
	kick(t, endpoint, "grow-2")
	eventually(t, wait, func() error {
		if n := counterWith(t, m.Registry(), "shadowsync_reconnects_total", map[string]string{"conn": "2"}); n < 1 {
			return fmt.Errorf("conn 2: %v reconnects", n)
		}
		n := gets.snapshot()
		for i := 160; i < 200; i++ {
			if n[name(i)] <= before[name(i)] {
				return fmt.Errorf("%s, on the cut connection, not read again", name(i))
			}
		}
		return nil
	})
	consistently(t, 300*time.Millisecond, func() error {
		n := gets.snapshot()
		for i := range 160 {
			if n[name(i)] != before[name(i)] {
				var again []string
				for j := range 200 {
					if n[name(j)] != before[name(j)] {
						again = append(again, name(j))
					}
				}
				return fmt.Errorf("%s, on another connection, read again after the cut (%v)", name(i), again)
			}
		}
		return nil
	})
	change(2, all...)

	// A thing the application reads and writes through Client before a controller
	// lists it stays on the connection its handle is on.
	h := shadow(t, m.Client(), "extra")
	want := m.PoolConn("extra").ClientID()
	if _, err := h.UpdateReported(t.Context(), map[string]any{"by": "app"}); err != nil {
		t.Fatal(err)
	}
	if err := echo.AddThing(t.Context(), "extra"); err != nil {
		t.Fatal(err)
	}
	if got := m.PoolConn("extra").ClientID(); got != want {
		t.Errorf("extra, held through Client on %s, placed on %s", want, got)
	}
	change(3, "extra")
	if _, err := h.Get(t.Context()); err != nil {
		t.Errorf("the application's handle of extra after AddThing: %v", err)
	}

	// Each message reaches the pool once: the primary, which subscribed the wildcard
	// filters and watched the fleet alone before the pool grew, moved both into the
	// pool's group. A change to a thing brings the pool four: the documents message
	// of the change and that of the report, and the update/accepted reply to each,
	// which the pool subscribes because the fleet controller confirms its reports by
	// their accepted replies. (Before, each came twice, the second copy on the
	// primary, and the late copies were read again.)
	received := func() uint64 {
		var n uint64
		for _, th := range []string{name(0), name(100), name(180)} {
			n += m.PoolConn(th).Received()
		}
		return n
	}
	for _, th := range []string{name(5), name(100), name(180), fleet["grow"]} {
		at := received()
		change(4, th)
		eventually(t, wait, func() error {
			if n := received() - at; n < 4 {
				return fmt.Errorf("%d messages", n)
			}
			return nil
		})
		consistently(t, 200*time.Millisecond, func() error {
			if n := received() - at; n != 4 {
				return fmt.Errorf("a change to %s brought the pool %d messages, want 4", th, n)
			}
			return nil
		})
	}

	if n := refused.n.Load(); n != 0 {
		t.Errorf("localiot refused or dropped %d messages; the last: %v", n, refused.last.Load())
	}
	if n := counterWith(t, m.Registry(), "shadowsync_publishes_throttled_total", nil) - throttled; n != 0 {
		t.Errorf("once grown, the pooled connections' caps delayed %v publishes: the pool is too small for the load", n)
	}
	for _, outcome := range []string{"rejected", "timeout"} {
		if n := counterWith(t, m.Registry(), "shadowsync_shadow_requests_total", map[string]string{"operation": "update", "outcome": outcome}); n != 0 {
			t.Errorf("%v reports %s", n, outcome)
		}
	}
}

// AddThing and RemoveThing from many goroutines at once, while an Auto pool grows:
// the pool ends at the size the listed shadows need, each thing stays on one
// connection, and every listed thing converges. (Run with -race.)
func TestPoolAutoGrowsUnderConcurrentAddThing(t *testing.T) {
	srv := testserver.Start(t, localiot.Options{})
	cfg := fastConfig(srv.Endpoints().Plain)
	cfg.ClientID = "busy"
	m, err := reconciler.NewManager(cfg, reconciler.Options{Logger: testLogger(t), Pool: reconciler.Pool{Auto: true, ChangeEvery: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	echo, err := reconciler.Echo(m, "busy-seed")
	if err != nil {
		t.Fatal(err)
	}
	run(t, m)
	awaitPool(t, m)
	const workers, each = 8, 30
	inParallel(t, workers, func(w int) error {
		for i := range each {
			th := fmt.Sprintf("busy-%d-%02d", w, i)
			if err := echo.AddThing(t.Context(), th); err != nil {
				return err
			}
			if i%3 == 2 { // every third thing comes and goes
				if err := echo.RemoveThing(t.Context(), th); err != nil {
					return err
				}
			}
		}
		return nil
	})
	// 1 + 8 × 20 = 161 shadows every second, 80 a connection: 3 connections; growth
	// looks at what is listed when each AddThing runs, up to 1 + 8 × 21 at the peak.
	if n := m.PoolSize(); n != 3 {
		t.Errorf("a pool of %d for 161 shadows listed (at most 169 at once), want 3", n)
	}
	awaitPool(t, m)
	var listed []string
	for w := range workers {
		for i := range each {
			if i%3 != 2 {
				listed = append(listed, fmt.Sprintf("busy-%d-%02d", w, i))
			}
		}
	}
	desireAll(t, srv, app(t, srv.Endpoints().Plain), 1, listed...)
}
