package reconciler

import (
	"sync"
	"sync/atomic"
)

// router says which connection of the pool carries each thing's shadows. A thing is
// hashed over the pool's starting size (route) until the pool grows; from then on a
// thing a controller starts listing is placed on the connection with the fewest
// listed things, and keeps that connection for as long as a controller lists it.
// Things already routed never move: moving a shadow would mean moving its
// subscriptions, requests and cache to another connection while events arrive.
type router struct {
	base  atomic.Int32 // the pool size things are hashed over
	grown atomic.Bool  // the pool has grown past base: new things are placed

	mu      sync.RWMutex
	things  map[string]*placement // the things the controllers list
	load    []int                 // listed things per connection
	shadows int                   // listed shadows, over all controllers
}

// placement is a listed thing's route.
type placement struct {
	conn int // the connection placed on; -1: hashed over base
	refs int // its listed shadows (classic and named, over controllers)
}

func newRouter(base int) *router {
	r := &router{things: map[string]*placement{}, load: make([]int, base)}
	r.base.Store(int32(base))
	return r
}

// index returns the connection of thing.
func (r *router) index(thing string) int {
	if !r.grown.Load() {
		return route(thing, int(r.base.Load()))
	}
	r.mu.RLock()
	p := r.things[thing]
	r.mu.RUnlock()
	if p != nil && p.conn >= 0 {
		return p.conn
	}
	return route(thing, int(r.base.Load()))
}

// acquire counts a listed shadow of thing, placing thing when it is new. hashed
// says whether thing's connection by the hash already holds handles of its shadows
// (the application's, through Manager.Client): a thing is not placed away from
// them, as their replies would then be dispatched to the other connection.
func (r *router) acquire(thing string, hashed bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.shadows++
	if p := r.things[thing]; p != nil {
		p.refs++
		return
	}
	p := &placement{conn: -1, refs: 1}
	k := route(thing, int(r.base.Load()))
	if r.grown.Load() && !hashed {
		k = 0
		for i, n := range r.load {
			if n < r.load[k] {
				k = i
			}
		}
		p.conn = k
	}
	r.load[k]++
	r.things[thing] = p
}

// release uncounts a listed shadow of thing; the thing's route is forgotten with
// its last one, unless held says that its connection still holds handles of its
// shadows (the application's): then it stays placed, unlisted.
func (r *router) release(thing string, held func(conn int) bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.things[thing]
	if p == nil || p.refs == 0 {
		return
	}
	r.shadows--
	if p.refs--; p.refs > 0 {
		return
	}
	if p.conn >= 0 && held(p.conn) {
		return
	}
	k := p.conn
	if k < 0 {
		k = route(thing, int(r.base.Load()))
	}
	r.load[k]--
	delete(r.things, thing)
}

// listed returns how many shadows the controllers list.
func (r *router) listed() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.shadows
}

// resize hashes every thing over a pool of n, for an Auto pool that Start sized
// before any thing was placed.
func (r *router) resize(n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.base.Store(int32(n))
	r.load = make([]int, n)
	for thing := range r.things {
		r.load[route(thing, n)]++
	}
}

// grow adds connections up to n: the things listed from now on are placed on the
// least loaded.
func (r *router) grow(n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for len(r.load) < n {
		r.load = append(r.load, 0)
	}
	r.grown.Store(true)
}
