package reconciler

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/shadowsync/shadowsync/shadowstate"
)

// entry is the framework's cached copy of one managed shadow.
//
// The cache is filled only from whole snapshots: a get, a documents message, or this
// controller's own accepted report applied to the snapshot it was computed from. A
// delta is not a snapshot (it leaves out desired keys the update deleted and every
// change to reported), so a delta only records that the cache is behind (want); the
// next reconcile then reads the shadow unless a documents message caught up first.
type entry struct {
	// run serialises everything that acts on the shadow: reconciles and reports. It
	// is held for the length of a Reconcile, so event handlers never take it; a
	// Report waiting for it gives up when its ctx ends.
	run runLock

	// waitingSince is when the shadow was last added to the queue (Unix nanoseconds),
	// for the queue wait metric; 0 when it is not waiting.
	waitingSince atomic.Int64
	// runFor is why the shadow is queued (runReconcile or runCheck), taken by the
	// worker that dequeues it; runNone when nothing said (a retry or requeue), which
	// runs a reconcile.
	runFor atomic.Int32

	mu sync.Mutex // guards the fields below; held only briefly
	// loaded says the cache holds a snapshot; until then a reconcile reads it first.
	loaded bool
	// suspect says an event older than the cache arrived: the shadow's versions may
	// have gone back, and only a read that no event overtook (authoritative, see
	// setDocument) tells, and resets what the cache recorded of later versions.
	suspect bool
	// exists is false for a shadow that does not exist (get answered 404).
	exists            bool
	desired, reported shadowstate.Object
	// version is the version of the snapshot held.
	version int64
	// want is the newest version a delta announced; while version is older, the cache
	// is behind and a reconcile reads the shadow first.
	want int64
	// gen counts the changes made to the cache by events and by this controller's own
	// reports: a read during which it did not move saw the shadow's latest state
	// (mark, setDocument).
	gen uint64
	// seen is the newest version an event has announced as needing a reconcile: an
	// event for a version already announced (the delta and the documents message of
	// one update, a duplicate) does not trigger another one.
	seen int64
	// own and written are the versions of this controller's report in flight and of
	// its last accepted one: the documents (and delta) messages a report causes do not
	// trigger another reconcile (the outcome of the reconcile already decided
	// whether and when it runs again).
	own, written int64
	// desiredAt is the newest version at which desired state was seen to change (or
	// may have: a version read that no event announced), and observedAt the version
	// the last finished reconcile read. A shadow whose desired state changed after
	// the last reconcile is reconciled even when the change leaves no delta (an app
	// desiring again what the device already reports), so that the status follows
	// every desired change.
	desiredAt, observedAt int64
	// pending is the device state (JSON form) and the deletions of a report that
	// failed: what the device is, written before anything else acts on the shadow.
	pending        shadowstate.Object
	pendingDeletes [][]string
	// unwatch removes the shadow's documents callback (a listed shadow of
	// a running controller); RemoveThing calls them.
	unwatch []func()
	// removed is set by RemoveThing: a reconcile or Report that got the entry before
	// and takes the run lock after does nothing.
	removed bool
}

// isRemoved reports whether RemoveThing took the shadow out.
func (e *entry) isRemoved() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.removed
}

// setPending records (or, with nil, clears) the device state a report failed to
// write.
func (e *entry) setPending(state shadowstate.Object, deletes [][]string) {
	e.mu.Lock()
	e.pending, e.pendingDeletes = state, deletes
	e.mu.Unlock()
}

// takePending returns the pending device state and deletions.
func (e *entry) takePending() (shadowstate.Object, [][]string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.pending, e.pendingDeletes
}

func newEntry() *entry { return &entry{run: make(runLock, 1)} }

// runLock is a mutex whose Lock gives up when a ctx ends.
type runLock chan struct{}

// Lock takes the lock, or returns ctx's error if ctx ends first.
func (l runLock) Lock(ctx context.Context) error {
	select {
	case l <- struct{}{}:
		return nil
	default:
	}
	select {
	case l <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TryLock takes the lock if it is free.
func (l runLock) TryLock() bool {
	select {
	case l <- struct{}{}:
		return true
	default:
		return false
	}
}

// Unlock releases the lock.
func (l runLock) Unlock() { <-l }

// observe records that a reconcile has handled the state read at version.
func (e *entry) observe(version int64) {
	e.mu.Lock()
	e.observedAt = max(e.observedAt, version)
	e.mu.Unlock()
}

// unobservedLocked reports whether the cached state needs a reconcile: desired and
// reported differ, or desired state changed after the last reconcile read it.
func (e *entry) unobservedLocked() bool {
	if shadowstate.Delta(e.desired, e.reported) != nil {
		return true
	}
	return e.desired != nil && e.desiredAt > e.observedAt
}

func (e *entry) snapshot() (desired, reported shadowstate.Object, version int64, exists bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.desired, e.reported, e.version, e.exists
}

// current reports whether the cache holds a snapshot at least as new as every delta
// announced.
func (e *entry) current() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.loaded && e.version >= e.want
}

// invalidate makes the next reconcile read the shadow again: a read failed, so the
// cache may miss what changed meanwhile.
func (e *entry) invalidate() {
	e.mu.Lock()
	e.loaded = false
	e.mu.Unlock()
}

// needsReconcile says, after a re-read, whether the shadow needs a reconcile: it
// differs, and either all is set or its version is one no event has announced.
func (e *entry) needsReconcile(all bool) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.unobservedLocked() {
		return false
	}
	fresh := e.version > e.seen
	e.seen = max(e.seen, e.version)
	return all || (fresh && !e.isOwn(e.version))
}

// mark returns the cache's change count, to be given back to setDocument and
// setMissing: a read must not overwrite what events, or this controller's own
// reports, told the cache while the read was in flight.
func (e *entry) mark() uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.gen
}

// setDocument stores the result of a get. With no change since the read began (mark)
// it is the shadow's latest state and replaces the cache whatever its version — a
// shadow deleted and created again more than 48 hours later starts again at version 1,
// and a shadow service that lost or restored its state serves older versions — and it
// then reports whether the version went backwards: everything the cache knew of later
// versions is forgotten, and the state read counts as a desired change not yet
// reconciled. Otherwise it is kept only if it is not older than the cache.
func (e *entry) setDocument(doc *shadowstate.Document, mark uint64) (backwards bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	authoritative := e.gen == mark
	e.gen++
	if !authoritative && e.loaded && doc.Version < e.version {
		return false // a newer snapshot got here first
	}
	if !authoritative && e.suspect {
		// An event older than the cache came during the read, or before it and this
		// read was overtaken: whether the versions went back is still open, and taking
		// this read would keep what the cache knew of the later versions (an event for
		// a version below them would then go unannounced). The event queued the shadow;
		// that run reads it again.
		return false
	}
	if authoritative && doc.Version < max(e.version, e.seen, e.written) {
		e.forgetVersionsLocked()
		backwards = true
	}
	if !e.loaded || !shadowstate.Equal(doc.State.Desired, e.desired) || (doc.Version > e.seen && !e.isOwn(doc.Version)) {
		// Desired state changed, or may have: a version no event announced can hide a
		// change and its undoing.
		e.desiredAt = max(e.desiredAt, doc.Version)
	}
	e.loaded, e.exists = true, true
	e.desired, e.reported, e.version = doc.State.Desired, doc.State.Reported, doc.Version
	if authoritative {
		e.suspect = false
		e.want = min(e.want, doc.Version)
		e.seen = min(e.seen, doc.Version)
	}
	return backwards
}

// forgetVersionsLocked forgets every version the cache has recorded, for a shadow whose
// versions started again.
func (e *entry) forgetVersionsLocked() {
	e.version, e.want, e.seen, e.own, e.written = 0, 0, 0, 0, 0
	e.desiredAt, e.observedAt = 0, 0
}

// setMissing records that a read found no shadow, unless the cache changed since the
// read began (mark): the shadow was created meanwhile, and the next reconcile reads it
// again.
func (e *entry) setMissing(mark uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.gen != mark {
		return
	}
	e.gen++
	e.loaded, e.exists, e.suspect = true, false, false
	e.desired, e.reported = nil, nil
	e.want = 0
}

// need is what an event asks for its shadow.
type need int

const (
	needNothing   need = iota // the cache is up to date, and nothing is to be done
	needReconcile             // a change to reconcile
	// needCheck: the event is older than the cache. Either it was delivered late
	// (a copy that came on another connection, or after a read that already held its
	// version) or the shadow's versions went back; a read tells which, and only the
	// latter, or a version the read finds that no event announced, needs a reconcile.
	needCheck
)

func (n need) String() string {
	switch n {
	case needNothing:
		return "nothing"
	case needReconcile:
		return "reconcile"
	case needCheck:
		return "check"
	}
	return fmt.Sprintf("need(%d)", int(n))
}

// Why a shadow is queued (entry.runFor), weakest first: the run does what the
// strongest reason asks.
const (
	runNone  int32 = iota // nothing recorded: reconcile
	runCheck              // an event older than the cache (needCheck)
	// runEvent: an event announced a change; the run reconciles unless a run since
	// (one already under way when the event came) reconciled the state it holds.
	runEvent
	runReconcile // a reconcile, whatever the cache says: a conflict, a retry, a requeue
)

// queueFor records why the shadow is being queued: the strongest reason wins.
func (e *entry) queueFor(why int32) {
	for {
		cur := e.runFor.Load()
		if cur >= why || e.runFor.CompareAndSwap(cur, why) {
			return
		}
	}
}

// takeRunFor returns why the shadow was queued and forgets it, for the run that
// dequeued it: anything that queues it afterwards is for the next run.
func (e *entry) takeRunFor() int32 { return e.runFor.Swap(runNone) }

// applyDelta records a delta and says what the shadow needs. The
// cache is not changed (a delta is not a snapshot); it is marked as behind. A delta
// older than what the cache has seen means the shadow's versions went backwards (or,
// rarely, it overtook a newer message): the cache is marked for a re-read, which
// tells which.
func (e *entry) applyDelta(d *shadowstate.DeltaMessage) need {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.gen++
	if d.Version == e.seen {
		return needNothing // the same update's documents message or a duplicate came first
	}
	if d.Version < max(e.seen, e.version, e.written) {
		e.loaded, e.suspect = false, true
		return needCheck
	}
	e.seen = d.Version
	e.want = max(e.want, d.Version)
	if e.isOwn(d.Version) {
		return needNothing
	}
	return needReconcile
}

// applyDocuments replaces the cache with a newer snapshot and says what the shadow
// needs: a reconcile when the version is new, it is not this controller's own
// report, and desired and reported differ; a check when the message is older than
// the cache. When the fleet is shared, the same update's
// delta went to whichever member reconciles it, so a documents message announces
// nothing and only keeps the cache current.
func (e *entry) applyDocuments(d *shadowstate.DocumentsMessage, shared bool) need {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.gen++
	v := d.Current.Version
	if v < max(e.version, e.written) {
		// Older than the cache: the versions went backwards (the service lost or
		// restored its state, or the shadow was created again after its deletion was
		// forgotten, 48 hours on), or the message overtook a newer one — the message
		// of the shadow's creation too, which has no previous state, like that of a
		// shadow created again. A re-read tells which.
		e.loaded, e.suspect = false, true
		return needCheck
	}
	// Desired state changed, or may have: when the message's previous version is newer
	// than the cache (messages were missed, say while offline), a change and its
	// undoing can hide between them.
	missed := d.Previous == nil || d.Previous.Version > e.version
	if !e.loaded || missed || !shadowstate.Equal(d.Current.State.Desired, e.desired) {
		e.desiredAt = max(e.desiredAt, v)
	}
	e.loaded, e.exists = true, true
	e.desired, e.reported, e.version = d.Current.State.Desired, d.Current.State.Reported, v
	if shared {
		return needNothing
	}
	announce := v > e.seen
	e.seen = max(e.seen, v)
	if announce && !e.isOwn(v) && e.unobservedLocked() {
		return needReconcile
	}
	return needNothing
}

func (e *entry) isOwn(v int64) bool { return v == e.own || v == e.written }

// differs reports whether the cached shadow needs a reconcile (see unobservedLocked).
func (e *entry) differs() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.unobservedLocked()
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

// reportResult returns the test UpdateByDocuments applies to a documents message that
// carries no clientToken: whether the message's state at version+1 is exactly what a
// report of patch makes of the cached state at version — desired as it was, reported
// with patch merged in. When the cache is no longer at version, the report was computed
// from a state that is gone, and nothing matches (it fails with 409, as the service
// answers it).
func (e *entry) reportResult(patch shadowstate.Object, version int64) func(*shadowstate.DocumentsMessage) bool {
	desired, reported, v, _ := e.snapshot()
	if v != version {
		return func(*shadowstate.DocumentsMessage) bool { return false }
	}
	return func(d *shadowstate.DocumentsMessage) bool {
		cur := d.Current
		return cur.Version == version+1 && shadowstate.Equal(cur.State.Desired, desired) &&
			shadowstate.Equal(cur.State.Reported, shadowstate.Merge(reported, patch))
	}
}

// reportAccepted records this controller's accepted report: patch merged into
// reported, at version.
func (e *entry) reportAccepted(patch shadowstate.Object, version int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.gen++
	e.written = version
	if version < e.version {
		return // a newer snapshot already arrived and includes the report
	}
	e.reported = shadowstate.Merge(e.reported, patch)
	e.version, e.exists = version, true
}
