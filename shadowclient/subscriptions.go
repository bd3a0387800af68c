package shadowclient

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/shadowsync/shadowsync/shadowstate"
	"github.com/shadowsync/shadowsync/transport"
)

// filterTable is the one owner of the client's topic filters. Every decision — which
// filters to hold, when to move to the wildcard filters, when to let a filter go —
// is taken under its one mutex, and every SUBSCRIBE is made by its one worker
// goroutine, in the order the filters were first needed. The worker runs while it
// has filters to subscribe and returns when it has none, so Close can wait for it.
//
// A filter is an entry from the moment a request first needs it: concurrent
// requests share the entry and wait for its SUBACK together, whatever becomes of
// the request that created it. Every request holds its filters while it runs
// (refs); a Persistent request, a callback or the wildcard switch also holds them
// for good (keep). A filter is let go once it is idle: no request holds it, and it
// is not kept or, being named, a subscribed wildcard filter covers it. Letting go
// of a filter while a request waits for a reply on it could lose the reply, as the
// connection drops the messages a subscription has not handled yet.
type filterTable struct {
	c *Client

	mu       sync.Mutex
	entries  map[string]*entry // by filter: subscribing or held
	queue    []*entry          // entries whose SUBSCRIBE the worker has yet to make
	idle     chan struct{}     // closed when the running worker returns; nil when none runs
	leaving  int               // filters dropped from entries whose UNSUBSCRIBE is under way
	wildcard bool              // requests use the wildcard filters; never reset
	closed   bool
}

// entry is one topic filter of the table. Its fields change only under the table's
// mutex; err and sub may be read without it once ready is closed.
type entry struct {
	filter string
	ready  chan struct{}           // closed once the SUBSCRIBE is answered
	err    error                   // why the SUBSCRIBE failed
	sub    *transport.Subscription // the subscription, once made
	refs   int                     // requests using it
	keep   bool                    // held for good
	moving bool                    // queued to move into the pool's group (reshare)
}

func (t *filterTable) init(c *Client) {
	t.c = c
	t.entries = make(map[string]*entry)
	t.wildcard = c.opts.Wildcards == WildcardsAlways
}

// acquire makes sure the reply topics of op on id are subscribed — the given kinds
// (Accepted, Rejected) —, waiting for the SUBACK, and returns a function to call once
// the request is over.
func (t *filterTable) acquire(ctx context.Context, id shadowstate.ID, op shadowstate.Op, kinds []shadowstate.Kind) (func(), error) {
	if t.wildcardsReady(id, op, kinds) {
		return noRelease, nil
	}
	filters := make([]string, len(kinds))
	for i, k := range kinds {
		filters[i] = id.Topic(op, k)
	}
	entries, err := t.reserve(filters, true, t.c.opts.Subscriptions == Persistent)
	if err != nil {
		return nil, err
	}
	if err := awaitAll(ctx, entries); err != nil {
		t.release(entries)
		return nil, err
	}
	return func() { t.release(entries) }, nil
}

// noRelease is the release of a request that holds nothing.
func noRelease() {}

// wildcardsReady reports whether the client has moved to the wildcard filters and
// those carrying the replies of op on id are subscribed: the request then needs
// nothing more, as a wildcard filter is held for good and never counted, and this
// is what nearly every request of a large fleet finds.
func (t *filterTable) wildcardsReady(id shadowstate.ID, op shadowstate.Op, kinds []shadowstate.Kind) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.wildcard || t.closed {
		return false
	}
	for _, k := range kinds {
		f, ok := replyWildcards[replyKey{named: id.Name != "", op: op, kind: k}]
		if !ok {
			return false
		}
		if e := t.entries[f]; e == nil || e.sub == nil {
			return false // not subscribed yet, or its SUBSCRIBE failed
		}
	}
	return true
}

// replyKey names the wildcard filter of the replies of one kind to one operation on
// the classic or on named shadows.
type replyKey struct {
	named bool
	op    shadowstate.Op
	kind  shadowstate.Kind
}

// replyWildcards are wildcardOf's filters for every reply to a request, looked up
// rather than built for each request.
var replyWildcards = func() map[replyKey]string {
	m := make(map[replyKey]string)
	for _, named := range []bool{false, true} {
		id := shadowstate.ID{Thing: "t"}
		if named {
			id.Name = "n"
		}
		for _, op := range []shadowstate.Op{shadowstate.OpGet, shadowstate.OpUpdate, shadowstate.OpDelete} {
			for _, kind := range []shadowstate.Kind{shadowstate.Accepted, shadowstate.Rejected} {
				m[replyKey{named, op, kind}] = wildcardOf(id.Topic(op, kind))
			}
		}
	}
	return m
}()

// watch makes sure the delta or documents topic of id is subscribed, for good.
func (t *filterTable) watch(ctx context.Context, id shadowstate.ID, kind shadowstate.Kind) error {
	entries, err := t.reserve([]string{id.Topic(shadowstate.OpUpdate, kind)}, false, true)
	if err != nil {
		return err
	}
	return awaitAll(ctx, entries)
}

// reserve takes, in one step under the lock, the entries of filters — by name, or
// by the wildcards covering them once the client uses those — for a request
// (counted) and for good (keep). Deciding and reserving together is what keeps
// concurrent requests within the budget between them. Wildcard filters are always
// kept.
func (t *filterTable) reserve(filters []string, counted, keep bool) ([]*entry, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, ErrClientClosed
	}
	if t.overBudgetLocked(filters) {
		t.switchLocked()
	}
	if t.wildcard {
		filters, keep = wildcardsOf(filters), true
	}
	entries := make([]*entry, len(filters))
	for i, f := range filters {
		entries[i] = t.entryLocked(f, counted, keep)
	}
	return entries, nil
}

// overBudgetLocked reports whether naming filters would take the client past
// Options.FilterBudget, which in WildcardsAuto means moving to the wildcard filters.
// A filter being unsubscribed still counts: the broker holds it until the UNSUBACK.
func (t *filterTable) overBudgetLocked(filters []string) bool {
	if t.wildcard || t.c.opts.Wildcards != WildcardsAuto {
		return false
	}
	missing := 0
	for _, f := range filters {
		if t.entries[f] == nil {
			missing++
		}
	}
	return len(t.entries)+t.leaving+missing > t.c.opts.FilterBudget
}

// switchLocked moves the client to the wildcard filters, once: from now on requests
// use them, starting with those covering every named filter held. A named filter is
// unsubscribed once the wildcard covering it is SUBACKed and no request waits on it
// (see idleLocked); until then replies may arrive on both, which is harmless: a
// reply whose request is already answered is ignored, and a delta already
// delivered is recognised by its version.
func (t *filterTable) switchLocked() {
	t.wildcard = true
	named := slices.Sorted(maps.Keys(t.entries))
	for _, f := range named {
		t.entryLocked(wildcardOf(f), false, true)
	}
	t.c.log.Info("shadow client moves to wildcard subscriptions", "named_filters", len(named))
}

// entryLocked returns the entry of filter, creating it and queueing its SUBSCRIBE
// when there is none, and holds it for one more request (counted) and for good
// (keep).
func (t *filterTable) entryLocked(filter string, counted, keep bool) *entry {
	e := t.entries[filter]
	if e == nil {
		e = &entry{filter: filter, ready: make(chan struct{})}
		t.entries[filter] = e
		t.queue = append(t.queue, e)
		if t.idle == nil {
			t.idle = make(chan struct{})
			go t.work()
		}
	}
	if counted {
		e.refs++
	}
	e.keep = e.keep || keep
	return e
}

// awaitAll waits for the SUBACK of every entry, or for ctx.
func awaitAll(ctx context.Context, entries []*entry) error {
	for _, e := range entries {
		select {
		case <-e.ready:
		case <-ctx.Done():
			return ctx.Err()
		}
		if e.err != nil {
			return e.err
		}
	}
	return nil
}

// release ends a request's hold on its entries and unsubscribes those left idle. An
// entry still subscribing is left to the worker, which decides once the SUBACK
// comes.
func (t *filterTable) release(entries []*entry) {
	t.mu.Lock()
	var drop []*transport.Subscription
	for _, e := range entries {
		e.refs--
		if t.idleLocked(e) {
			drop = append(drop, t.dropLocked(e))
		}
	}
	t.mu.Unlock()
	t.unsubscribe(drop, "a filter no request holds")
}

// idleLocked reports whether e is subscribed and nothing holds it any more: no
// request, and no keep unless a subscribed wildcard filter now covers it.
func (t *filterTable) idleLocked(e *entry) bool {
	if e.sub == nil || e.refs > 0 || t.entries[e.filter] != e {
		return false
	}
	if !e.keep {
		return true
	}
	w := t.entries[wildcardOf(e.filter)]
	return t.wildcard && !isWildcard(e.filter) && w != nil && w.sub != nil
}

// work is the worker: it makes the queued SUBSCRIBEs one at a time (the connection
// sends them one at a time anyway) until the queue is empty.
func (t *filterTable) work() {
	for {
		e, closed := t.next()
		if e == nil {
			return
		}
		if e.moving {
			t.move(e, closed)
			continue
		}
		var sub *transport.Subscription
		err := ErrClientClosed
		if !closed {
			sub, err = t.subscribe(e.filter)
		}
		t.mu.Lock()
		drop := t.settleLocked(e, sub, err)
		t.mu.Unlock()
		t.unsubscribe(drop, "a filter no request holds")
	}
}

// next takes the next entry to subscribe, and whether the client is closed; nil
// when there is none, in which case the worker is done.
func (t *filterTable) next() (*entry, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.queue) == 0 {
		close(t.idle)
		t.idle = nil
		return nil, false
	}
	e := t.queue[0]
	t.queue[0] = nil
	t.queue = t.queue[1:]
	return e, t.closed
}

// reshare moves the wildcard filters the client subscribed unshared — while its
// pool had one member — into the pool's shared-subscription group, now that the
// pool shares: the worker subscribes each one shared, then unsubscribes the unshared
// one (move). Left as they were, they would bring the client a copy of every
// message of the wildcard filters on top of the group's, so that the pool would
// receive each message twice. Filters still waiting for their SUBSCRIBE need
// nothing: the worker subscribes them shared.
func (t *filterTable) reshare() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	var moves []*entry
	for _, e := range t.entries {
		if e.sub != nil && !e.moving && isWildcard(e.filter) && e.sub.Filter() != t.c.opts.Pool.share(e.filter) {
			e.moving = true
			moves = append(moves, e)
		}
	}
	if len(moves) == 0 {
		return
	}
	slices.SortFunc(moves, func(a, b *entry) int { return strings.Compare(a.filter, b.filter) })
	t.queue = append(t.queue, moves...)
	if t.idle == nil {
		t.idle = make(chan struct{})
		go t.work()
	}
}

// move subscribes e's wildcard filter in the pool's group and then lets its
// unshared subscription go (see reshare). Messages may arrive on both meanwhile,
// which is harmless: a reply whose request is already answered is ignored, and a
// documents message or delta already delivered is recognised by its version. When
// the shared SUBSCRIBE fails, the unshared filter stays: the client then receives
// the messages twice, but misses none.
func (t *filterTable) move(e *entry, closed bool) {
	t.mu.Lock()
	old := e.sub
	t.mu.Unlock()
	var sub *transport.Subscription
	err := ErrClientClosed
	if !closed {
		sub, err = t.subscribe(e.filter)
	}
	t.mu.Lock()
	e.moving = false
	var drop *transport.Subscription
	switch {
	case err != nil:
	case t.entries[e.filter] != e || e.sub != old:
		// Dropped, or the client closed, while the SUBSCRIBE was under way: whoever
		// dropped the entry lets the old subscription go; the new one is left over.
		drop = sub
		t.leaving++
	default:
		e.sub, drop = sub, old
		t.leaving++
	}
	t.mu.Unlock()
	if err != nil {
		if !closed {
			t.c.log.Warn("wildcard filter not moved into the pool's shared-subscription group; it stays unshared, and its messages arrive twice", "filter", e.filter, "error", err)
		}
		return
	}
	t.unsubscribe([]*transport.Subscription{drop}, "a wildcard filter moved into the pool's group")
}

// subscribe makes one SUBSCRIBE. It serves every request waiting for the filter,
// not only the one that asked first, so it runs under the client's Timeout alone.
func (t *filterTable) subscribe(filter string) (*transport.Subscription, error) {
	c := t.c
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.Timeout)
	defer cancel()
	// The client's handler never blocks, so a large buffer only absorbs bursts, such
	// as the deltas of a thousand shadows on the wildcard filters.
	sub, err := c.conn.Subscribe(ctx, c.opts.Pool.share(filter), transport.HandlerFunc(c.dispatch), transport.QoS(c.subQoS()), transport.Buffer(8192))
	if errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("%w (no SUBACK for %s within %v)", ErrRequestTimeout, filter, c.opts.Timeout)
	}
	if err != nil && isWildcard(filter) {
		err = fmt.Errorf("subscribe to wildcard filter %s (the connection needs a policy that allows it, or Options.Wildcards = WildcardsNever): %w", filter, err)
	}
	return sub, err
}

// settleLocked records the answer to e's SUBACK, wakes the requests waiting for it,
// and returns the subscriptions to unsubscribe now. A failed filter is forgotten,
// so a later request tries again. A filter nobody holds any more — a PerRequest
// filter whose requests all gave up, or one Close dropped — is let go again. A
// wildcard filter replaces the idle named filters it covers.
func (t *filterTable) settleLocked(e *entry, sub *transport.Subscription, err error) []*transport.Subscription {
	defer close(e.ready)
	e.sub, e.err = sub, err
	current := t.entries[e.filter] == e
	switch {
	case err != nil:
		if current {
			delete(t.entries, e.filter)
		}
		return nil
	case !current, t.idleLocked(e):
		return []*transport.Subscription{t.dropLocked(e)}
	case isWildcard(e.filter):
		return t.coveredLocked(e.filter)
	}
	return nil
}

// coveredLocked removes the idle named filters that wildcard covers and returns
// their subscriptions. Those that requests still hold go when the last of them ends
// (release). No named filter is made after the switch, and the worker makes those
// queued before it first, so none is left behind.
func (t *filterTable) coveredLocked(wildcard string) []*transport.Subscription {
	var subs []*transport.Subscription
	for f, e := range t.entries {
		if wildcardOf(f) == wildcard && t.idleLocked(e) {
			subs = append(subs, t.dropLocked(e))
		}
	}
	return subs
}

// dropLocked removes a subscribed entry (unless Close did), counting it as leaving
// until unsubscribe has let it go, and returns its subscription.
func (t *filterTable) dropLocked(e *entry) *transport.Subscription {
	if t.entries[e.filter] == e {
		delete(t.entries, e.filter)
	}
	t.leaving++
	return e.sub
}

// unsubscribe lets go of subs, which dropLocked removed. It is housekeeping: it must
// not hold up a request's caller for long, and a failure only leaves a subscription
// behind.
func (t *filterTable) unsubscribe(subs []*transport.Subscription, what string) {
	if len(subs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), t.c.opts.Timeout)
	defer cancel()
	for _, sub := range subs {
		if err := sub.Unsubscribe(ctx); err != nil {
			t.c.log.Warn("unsubscribe of "+what+" failed", "filter", sub.Filter(), "error", err)
		}
		t.mu.Lock()
		t.leaving--
		t.mu.Unlock()
	}
}

// close refuses further requests, waits (within ctx) for the worker to finish the
// SUBSCRIBEs under way, and unsubscribes every filter. A SUBSCRIBE still under way
// when ctx ends is undone by the worker itself, as it no longer finds its entry.
func (t *filterTable) close(ctx context.Context) error {
	t.mu.Lock()
	t.closed = true
	idle := t.idle
	t.mu.Unlock()
	if idle != nil {
		select {
		case <-idle:
		case <-ctx.Done():
		}
	}
	t.mu.Lock()
	var subs []*transport.Subscription
	for f, e := range t.entries {
		if e.sub != nil {
			subs = append(subs, e.sub)
		}
		delete(t.entries, f)
	}
	t.mu.Unlock()
	var errs []error
	for _, sub := range subs {
		if err := sub.Unsubscribe(ctx); err != nil {
			errs = append(errs, fmt.Errorf("unsubscribe %s: %w", sub.Filter(), err))
		}
	}
	return errors.Join(errs...)
}

// held returns the filters subscribed, sorted.
func (t *filterTable) held() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var fs []string
	for f, e := range t.entries {
		if e.sub != nil {
			fs = append(fs, f)
		}
	}
	slices.Sort(fs)
	return fs
}

// wildcardOf returns the filter that covers a per-shadow filter for every thing:
// the accepted replies of one operation, the rejections of every operation, or the
// delta or documents topic, on the classic or on named shadows. At most 12 such
// filters serve any number of shadows. Accepted replies get a filter per operation
// because every client's accepted replies come through it: an app's update is
// answered on /update/accepted, which a client that only reads (get) or confirms its
// updates from the documents messages (UpdateByDocuments) need not receive.
// Rejections are rare, so one filter takes them all.
func wildcardOf(filter string) string {
	id, op, kind, ok := shadowstate.ParseTopic(filter)
	if !ok {
		return filter
	}
	named := id.Name != ""
	switch {
	case kind == shadowstate.Accepted && named:
		return "$aws/things/+/shadow/name/+/" + string(op) + "/" + string(kind)
	case kind == shadowstate.Accepted:
		return "$aws/things/+/shadow/" + string(op) + "/" + string(kind)
	case kind == shadowstate.Rejected:
		if named {
			return "$aws/things/+/shadow/name/+/+/" + string(kind)
		}
		return "$aws/things/+/shadow/+/" + string(kind)
	case named:
		return "$aws/things/+/shadow/name/+/update/" + string(kind)
	}
	return "$aws/things/+/shadow/update/" + string(kind)
}

// wildcardsOf maps wildcardOf over filters.
func wildcardsOf(filters []string) []string {
	out := make([]string, len(filters))
	for i, f := range filters {
		out[i] = wildcardOf(f)
	}
	return out
}

func isWildcard(f string) bool { return strings.Contains(f, "+") }
