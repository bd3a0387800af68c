package reconciler

import (
	"container/list"
	"strings"
	"sync"

	"github.com/shadowsync/shadowsync/shadowstate"
)

// Fleet makes a controller manage a whole fleet instead of a list of things: every
// thing whose name starts with Prefix, discovered from the documents messages of its
// shadow, and with a Group its deltas (MQTT cannot list things). Several processes share a fleet
// by joining the same Group: the broker (AWS IoT Core, or any MQTT broker with shared
// subscriptions) hands each event to one of them, and versioned reports keep
// concurrent writers correct. The connection's policy must allow the wildcard filters
// (see docs/fleet.md).
type Fleet struct {
	// Prefix selects the things: only names starting with it are managed. Empty
	// means every thing.
	Prefix string
	// Group is the shared subscription group ($share/Group/...) the processes of a
	// fleet join. Empty means this process handles every event itself.
	Group string
	// Mirror, when set, watches the event copies a shadow service publishes under this
	// topic prefix (shadowclient.FleetWatch.Mirror), for brokers that never deliver
	// '$' topics to shared subscriptions. Empty means the $aws topics.
	Mirror string
	// MaxShadows bounds the shadows cached at once; past it the least recently used
	// idle shadow is forgotten (and read again when it next has an event), so memory
	// stays flat however large the fleet. Zero means 100,000.
	MaxShadows int
	// PersistentSession makes an event handed to this process survive its crash: the
	// controller acknowledges each event to the broker only once the reconcile it
	// triggered has run (succeeded, failed for good, or failed and been queued for
	// its retry), so the broker still holds what a killed process received and had
	// not reconciled, together with what arrived for it while it was down, and
	// delivers all of it when the process comes back with the same client ID. The
	// manager's connection must keep a persistent session
	// (transport.Config.PersistentSession with a ClientID that each member keeps
	// across restarts and no two members share); Register refuses it otherwise. See
	// docs/fleet.md for what is still lost.
	PersistentSession bool
	// MaxUnacked bounds the events, with PersistentSession, held unacknowledged while
	// they wait for their reconcile; past it the oldest is acknowledged at once
	// (losing its protection) so that the broker, which sends a client only so many
	// unacknowledged messages, keeps delivering. Zero means DefaultMaxUnacked.
	MaxUnacked int
}

// shadowSet holds the shadows a controller manages: a fixed list, or in fleet mode
// the shadows discovered so far, at most max of them, least recently used evicted
// first. It is safe for concurrent use.
type shadowSet struct {
	fleet   *Fleet               // nil for a fixed list
	shadow  string               // the shadow name managed on each thing
	onEvict func(shadowstate.ID) // called, outside the lock, for each shadow forgotten

	mu   sync.Mutex
	byID map[shadowstate.ID]*list.Element // element values are *setItem
	lru  *list.List                       // front: most recently used
}

type setItem struct {
	id shadowstate.ID
	e  *entry
}

func newShadowSet(fleet *Fleet, shadow string) *shadowSet {
	return &shadowSet{fleet: fleet, shadow: shadow, byID: make(map[shadowstate.ID]*list.Element), lru: list.New()}
}

// add puts id in a fixed list; false if it is there already.
func (s *shadowSet) add(id shadowstate.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byID[id] != nil {
		return false
	}
	s.byID[id] = s.lru.PushFront(&setItem{id: id, e: newEntry()})
	return true
}

// remove takes id out of a fixed list and returns its entry; nil if it is not there.
func (s *shadowSet) remove(id shadowstate.ID) *entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	el := s.byID[id]
	if el == nil {
		return nil
	}
	delete(s.byID, id)
	s.lru.Remove(el)
	return el.Value.(*setItem).e
}

// manages reports whether id is one of the controller's shadows: listed, or in fleet
// mode, the right shadow of a thing with the prefix.
func (s *shadowSet) manages(id shadowstate.ID) bool {
	if s.fleet == nil {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.byID[id] != nil
	}
	return id.Name == s.shadow && strings.HasPrefix(id.Thing, s.fleet.Prefix)
}

// get returns the entry of id, creating it in fleet mode; nil for a shadow the
// controller does not manage.
func (s *shadowSet) get(id shadowstate.ID) *entry {
	if !s.manages(id) {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if el := s.byID[id]; el != nil {
		s.lru.MoveToFront(el)
		return el.Value.(*setItem).e
	}
	e := newEntry()
	s.byID[id] = s.lru.PushFront(&setItem{id: id, e: e})
	evicted := s.evictLocked()
	if s.onEvict != nil && len(evicted) > 0 {
		s.mu.Unlock()
		for _, gone := range evicted {
			s.onEvict(gone)
		}
		s.mu.Lock()
	}
	return e
}

// evictLocked forgets least recently used idle shadows while the set is over its
// bound. A shadow being reconciled is skipped; it is newer than most anyway.
func (s *shadowSet) evictLocked() (evicted []shadowstate.ID) {
	if s.fleet == nil {
		return nil
	}
	limit := s.fleet.MaxShadows
	if limit <= 0 {
		limit = 100_000
	}
	for el := s.lru.Back(); el != nil && s.lru.Len() > limit; {
		prev := el.Prev()
		it := el.Value.(*setItem)
		if it.e.run.TryLock() {
			delete(s.byID, it.id)
			s.lru.Remove(el)
			it.e.run.Unlock()
			evicted = append(evicted, it.id)
		}
		el = prev
	}
	return evicted
}

// all returns every shadow held, with its entry.
func (s *shadowSet) all() []setItem {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]setItem, 0, s.lru.Len())
	for el := s.lru.Front(); el != nil; el = el.Next() {
		out = append(out, *el.Value.(*setItem))
	}
	return out
}

func (s *shadowSet) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lru.Len()
}
