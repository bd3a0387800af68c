package reconciler

import (
	"sync"

	"github.com/shadowsync/shadowsync/shadowstate"
)

// entry is the framework's cached copy of one managed shadow.
type entry struct {
	// run serialises everything that acts on the shadow: reconciles and reports. It
	// is held for the length of a Reconcile, so event handlers never take it.
	run sync.Mutex

	mu sync.Mutex // guards the fields below; held only briefly
	// loaded says the cache holds the shadow as read by a get or a documents
	// message; until then a reconcile reads it first.
	loaded bool
	// exists is false for a shadow that does not exist (get answered 404).
	exists            bool
	desired, reported shadowstate.Object
	// version is the newest shadow version the cache reflects.
	version int64
	// seen is the newest version a delta or documents message has announced: an
	// event for a version already announced (the delta and the documents message of
	// one update, a duplicate) does not trigger another reconcile.
	seen int64
	// own and written are the versions of this controller's report in flight and of
	// its last accepted one: the delta and documents messages a report causes do not
	// trigger another reconcile (the outcome of the reconcile already decided
	// whether and when it runs again).
	own, written int64
}

func (e *entry) snapshot() (desired, reported shadowstate.Object, version int64, exists, loaded bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.desired, e.reported, e.version, e.exists, e.loaded
}

// needsReconcile says, after a re-read, whether the shadow needs a reconcile: it
// differs, and either all is set or its version is one no event has announced.
func (e *entry) needsReconcile(all bool) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if shadowstate.Delta(e.desired, e.reported) == nil {
		return false
	}
	fresh := e.version > e.seen
	e.seen = max(e.seen, e.version)
	return all || (fresh && !e.isOwn(e.version))
}

func (e *entry) setDocument(doc *shadowstate.Document) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.loaded && doc.Version < e.version {
		return // a newer documents message got here first
	}
	e.loaded, e.exists = true, true
	e.desired, e.reported, e.version = doc.State.Desired, doc.State.Reported, doc.Version
}

// mark returns what the cache has heard of, to be given back to setMissing: a read
// that found no shadow must not wipe out events that arrived while it was in flight.
func (e *entry) mark() int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.seen
}

// setMissing records that a read found no shadow, unless an event announced a version
// since the read began (mark): the shadow was created meanwhile, and the next
// reconcile reads it again.
func (e *entry) setMissing(mark int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.seen != mark {
		return
	}
	e.loaded, e.exists = true, false
	e.desired, e.reported = nil, nil
}

// applyDelta merges a newer delta's desired values into the cache and reports
// whether the shadow needs a reconcile. Reported is left as it is: if the update that
// caused the delta changed it too, the documents message brings it, and a report based
// on the older copy is caught by its version.
func (e *entry) applyDelta(d *shadowstate.DeltaMessage) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if d.Version <= e.seen {
		return false
	}
	e.seen = d.Version
	if e.loaded && d.Version > e.version {
		e.desired = shadowstate.Merge(e.desired, d.State)
		e.version = d.Version
		e.exists = true
	}
	return !e.isOwn(d.Version)
}

// applyDocuments replaces the cache with a newer snapshot and reports whether the
// shadow now needs a reconcile: the version is new, it is not this controller's own
// report, and desired and reported differ.
func (e *entry) applyDocuments(d *shadowstate.DocumentsMessage) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	v := d.Current.Version
	if e.loaded && v < e.version {
		return false
	}
	e.loaded, e.exists = true, true
	e.desired, e.reported, e.version = d.Current.State.Desired, d.Current.State.Reported, v
	announce := v > e.seen
	e.seen = max(e.seen, v)
	return announce && !e.isOwn(v) && shadowstate.Delta(e.desired, e.reported) != nil
}

func (e *entry) isOwn(v int64) bool { return v == e.own || v == e.written }

// differs reports whether the cached desired and reported state differ.
func (e *entry) differs() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return shadowstate.Delta(e.desired, e.reported) != nil
}

// clearOwn forgets a report expected at version v that failed: the version, if it
// exists, is someone else's, and its events must count.
func (e *entry) clearOwn(v int64) {
	e.mu.Lock()
	if e.own == v {
		e.own = 0
	}
	e.mu.Unlock()
}

// expectOwn records that a report at version v-1 is being sent: if accepted, the
// shadow's next version is v and its messages are this controller's.
func (e *entry) expectOwn(v int64) {
	e.mu.Lock()
	e.own = v
	e.mu.Unlock()
}

// reportAccepted records this controller's accepted report: patch merged into
// reported, at version.
func (e *entry) reportAccepted(patch shadowstate.Object, version int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.written = version
	if version < e.version {
		return // a newer snapshot already arrived and includes the report
	}
	e.reported = shadowstate.Merge(e.reported, patch)
	e.version, e.exists = version, true
}
