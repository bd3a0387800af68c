package reconciler

import (
	"hash/fnv"
	"testing"
	"time"
)

// The route is FNV-1a of the thing name modulo the pool size, as hash/fnv computes
// it: stable across runs, processes and versions, and the same for a thing's classic
// and named shadows (the shadow name is not hashed).
func TestRouteIsFNV1a(t *testing.T) {
	for _, thing := range []string{"", "a", "lamp-1", "lamp-2", "gateway/sub:7", "ünïcode"} {
		h := fnv.New32a()
		_, _ = h.Write([]byte(thing))
		for _, n := range []int{1, 2, 3, 7, 64} {
			if got, want := route(thing, n), int(h.Sum32()%uint32(n)); got != want {
				t.Errorf("route(%q, %d) = %d, want %d", thing, n, got, want)
			}
		}
	}
	if route("x", 0) != 0 || route("x", 1) != 0 {
		t.Error("a pool of one routes everything to the primary")
	}
}

func TestPoolAutoSize(t *testing.T) {
	for _, tc := range []struct {
		pool    Pool
		shadows int
		rate    float64
		want    int
		capped  bool
	}{
		{Pool{Auto: true, ChangeEvery: 4 * time.Second}, 2000, 100, 7, false}, // 500/s at 80/s a connection
		{Pool{Auto: true, ChangeEvery: 4 * time.Second}, 2000, -1, 7, false},  // no cap: AWS's 100/s
		{Pool{Auto: true, ChangeEvery: 2 * time.Second}, 300, 100, 2, false},
		{Pool{Auto: true, ChangeEvery: time.Second}, 10, 100, 1, false},
		{Pool{Auto: true, ChangeEvery: time.Second}, 0, 100, 1, false},
		{Pool{Auto: true, ChangeEvery: time.Second}, 100_000, 100, 64, true},
		{Pool{Auto: true, ChangeEvery: time.Second, MaxSize: 4}, 1000, 100, 4, true},
		{Pool{Auto: true, ChangeEvery: time.Second}, 1000, 400, 4, false}, // a raised cap
	} {
		n, capped := tc.pool.autoSize(tc.shadows, tc.rate)
		if n != tc.want || capped != tc.capped {
			t.Errorf("%+v with %d shadows at %v/s: %d connections (capped %v), want %d (%v)", tc.pool, tc.shadows, tc.rate, n, capped, tc.want, tc.capped)
		}
	}
}

// The pool's shared-subscription group is named after the primary's client ID, with
// anything an MQTT group name may not hold, or a policy would have to quote, as '_'.
func TestPoolGroup(t *testing.T) {
	for id, want := range map[string]string{
		"gw-7":          "shadowsync-pool-gw-7",
		"a/b+c#d":       "shadowsync-pool-a_b_c_d",
		"gw:7.eu_west":  "shadowsync-pool-gw_7_eu_west",
		"ünï":           "shadowsync-pool-__n__", // each byte of a multi-byte character
		"shadowsync-x1": "shadowsync-pool-shadowsync-x1",
	} {
		if got := poolGroup(id); got != want {
			t.Errorf("poolGroup(%q) = %q, want %q", id, got, want)
		}
	}
	for _, p := range []Pool{{Size: 2}, {Auto: true}} {
		if !p.shares() {
			t.Errorf("%+v does not share", p)
		}
	}
	for _, p := range []Pool{{}, {Size: 1}, {Size: 3, Unshared: true}} {
		if p.shares() {
			t.Errorf("%+v shares", p)
		}
	}
}

// The router hashes things over the pool's starting size until the pool grows; then
// a new thing goes to the least loaded connection (the lowest index on a tie), a
// thing listed twice (classic and named shadows, or two controllers) keeps one
// connection, and a thing keeps its placement while it is listed, or, unlisted,
// while its connection still holds the application's handles of it.
func TestRouterPlacesNewThingsOnTheLeastLoaded(t *testing.T) {
	r := newRouter(2)
	for _, th := range []string{"a", "b", "c", "d", "e"} {
		r.acquire(th, false)
		if got, want := r.index(th), route(th, 2); got != want {
			t.Fatalf("before growing, %s on %d, want the hash's %d", th, got, want)
		}
	}
	before := r.loads()
	r.grow(4)
	r.acquire("x", false) // conns 2 and 3 are empty: the lowest, 2
	r.acquire("y", false) // 3
	r.acquire("x", false) // a second shadow of x: no new placement
	if r.index("x") != 2 || r.index("y") != 3 {
		t.Errorf("x on %d, y on %d; want 2 and 3", r.index("x"), r.index("y"))
	}
	if got := r.loads(); got[0] != before[0] || got[1] != before[1] || got[2] != 1 || got[3] != 1 {
		t.Errorf("loads %v after placing x and y (before growing %v)", got, before)
	}
	for _, th := range []string{"a", "b", "c", "d", "e"} {
		if got, want := r.index(th), route(th, 2); got != want {
			t.Errorf("after growing, %s moved to %d from %d", th, got, want)
		}
	}
	if r.listed() != 8 {
		t.Errorf("listed %d shadows, want 8", r.listed())
	}
	// A new thing whose hashed connection holds its handles stays there.
	r.acquire("held", true)
	if got, want := r.index("held"), route("held", 2); got != want {
		t.Errorf("held placed on %d, want its handles' %d", got, want)
	}
	// Released once of twice, x stays; released again, it is forgotten (hashed).
	r.release("x", func(int) bool { return false })
	if r.index("x") != 2 {
		t.Errorf("x, still listed once, moved to %d", r.index("x"))
	}
	r.release("x", func(int) bool { return false })
	if got, want := r.index("x"), route("x", 2); got != want {
		t.Errorf("x, unlisted, on %d, want the hash's %d", got, want)
	}
	// Unlisted while its connection holds handles, y stays placed.
	r.release("y", func(conn int) bool { return conn == 3 })
	if r.index("y") != 3 {
		t.Errorf("y, whose connection holds its handles, moved to %d", r.index("y"))
	}
	r.release("y", func(int) bool { return false }) // no longer listed: nothing to release
	if r.listed() != 6 {
		t.Errorf("listed %d shadows, want 6", r.listed())
	}
}

// loads returns the listed things per connection, for the router's tests.
func (r *router) loads() []int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return append([]int(nil), r.load...)
}

// Two pooled connections coming online together each signal a re-read; the first
// signal may take both requests, and the second must then find nothing to do
// rather than a re-read of every shadow (which, on a pool of thousands of shadows
// paced at the quota, would spend seconds of it reading everything again).
func TestConnectionsOnlineTogetherReReadOnce(t *testing.T) {
	m := &Manager{resyncs: make(chan struct{}, 1)}
	m.requestResync("connection online", 0)
	m.requestResync("connection online", 1)
	why, conns, ok := m.takeResync()
	if !ok || why != "connection online" || len(conns) != 2 || !conns[0] || !conns[1] {
		t.Fatalf("first take: %q %v %v, want the re-read of connections 0 and 1", why, conns, ok)
	}
	if why, conns, ok := m.takeResync(); ok {
		t.Fatalf("second take, with nothing requested since: %q %v, want nothing pending", why, conns)
	}
	m.requestResync("connection online", 1)
	if why, conns, ok := m.takeResync(); !ok || len(conns) != 2 || conns[0] || !conns[1] {
		t.Fatalf("take after connection 1 alone came back: %q %v %v, want connection 1's re-read", why, conns, ok)
	}
}
