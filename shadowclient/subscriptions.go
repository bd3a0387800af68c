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
// the request that created it. A filter is held for good (keep) by a Persistent
// request, a callback or the wildcard switch; a PerRequest request holds it only
// while it runs (refs), and the last one to finish unsubscribes it.
type filterTable struct {
	c *Client

	mu       sync.Mutex
	entries  map[string]*entry // by filter: subscribing or held
	queue    []*entry          // entries whose SUBSCRIBE the worker has yet to make
	idle     chan struct{}     // closed when the running worker returns; nil when none runs
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
	refs   int                     // PerRequest requests using it
	keep   bool                    // held for good
}

func (t *filterTable) init(c *Client) {
	t.c = c
	t.entries = make(map[string]*entry)
	t.wildcard = c.opts.Wildcards == WildcardsAlways
}

// acquire makes sure the accepted and rejected topics of op on id are subscribed,
// waiting for the SUBACK, and returns a function to call once the request is over.
func (t *filterTable) acquire(ctx context.Context, id shadowstate.ID, op shadowstate.Op) (func(), error) {
	filters := []string{id.Topic(op, shadowstate.Accepted), id.Topic(op, shadowstate.Rejected)}
	return t.need(ctx, filters, t.c.opts.Subscriptions == PerRequest)
}

// watch makes sure the delta or documents topic of id is subscribed, for good.
func (t *filterTable) watch(ctx context.Context, id shadowstate.ID, kind string) error {
	_, err := t.need(ctx, []string{id.Topic(shadowstate.OpUpdate, kind)}, false)
	return err
}

// need reserves filters (or the wildcards covering them) and waits for their SUBACK.
// counted reserves them for one PerRequest request only; the returned function
// releases them.
func (t *filterTable) need(ctx context.Context, filters []string, counted bool) (func(), error) {
	entries, counted, err := t.reserve(filters, counted)
	if err != nil {
		return nil, err
	}
	release := func() {}
	if counted {
		release = func() { t.release(entries) }
	}
	if err := awaitAll(ctx, entries); err != nil {
		release()
		return nil, err
	}
	return release, nil
}

// reserve takes, in one step under the lock, the entries of filters: by name, or by
// the wildcards covering them once the client uses those. Deciding and reserving
// together is what keeps concurrent requests within the budget between them. It
// reports whether the entries are counted: wildcard filters are always kept.
func (t *filterTable) reserve(filters []string, counted bool) ([]*entry, bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, false, ErrClientClosed
	}
	if t.overBudgetLocked(filters) {
		t.switchLocked()
	}
	if t.wildcard {
		filters = wildcardsOf(filters)
		counted = false
	}
	entries := make([]*entry, len(filters))
	for i, f := range filters {
		entries[i] = t.entryLocked(f, counted)
	}
	return entries, counted, nil
}

// overBudgetLocked reports whether naming filters would take the client past
// Options.FilterBudget, which in WildcardsAuto means moving to the wildcard filters.
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
	return len(t.entries)+missing > t.c.opts.FilterBudget
}

// switchLocked moves the client to the wildcard filters, once: from now on requests
// use them, starting with those covering every named filter held. A named filter is
// unsubscribed once the wildcard covering it is SUBACKed (see settleLocked); until
// then replies may arrive on both, which is harmless: a reply whose request is
// already answered is ignored, and a delta already delivered is recognised by its
// version.
func (t *filterTable) switchLocked() {
	t.wildcard = true
	named := slices.Sorted(maps.Keys(t.entries))
	for _, f := range named {
		t.entryLocked(wildcardOf(f), false)
	}
	t.c.log.Info("shadow client moves to wildcard subscriptions", "named_filters", len(named))
}

// entryLocked returns the entry of filter, creating it and queueing its SUBSCRIBE
// when there is none, and holds it for one more request (counted) or for good.
func (t *filterTable) entryLocked(filter string, counted bool) *entry {
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
	} else {
		e.keep = true
	}
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

// release ends a PerRequest request's hold on its entries. A subscribed filter no
// request holds any more is unsubscribed at once; one still subscribing is left to
// the worker, which unsubscribes it once the SUBACK comes.
func (t *filterTable) release(entries []*entry) {
	t.mu.Lock()
	var drop []*transport.Subscription
	for _, e := range entries {
		e.refs--
		if e.refs == 0 && !e.keep && e.sub != nil && t.entries[e.filter] == e {
			delete(t.entries, e.filter)
			drop = append(drop, e.sub)
		}
	}
	t.mu.Unlock()
	t.unsubscribe(drop, "a per-request filter")
}

// work is the worker: it makes the queued SUBSCRIBEs one at a time (the connection
// sends them one at a time anyway) until the queue is empty.
func (t *filterTable) work() {
	for {
		e, closed := t.next()
		if e == nil {
			return
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

// subscribe makes one SUBSCRIBE. It serves every request waiting for the filter,
// not only the one that asked first, so it runs under the client's Timeout alone.
func (t *filterTable) subscribe(filter string) (*transport.Subscription, error) {
	c := t.c
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.Timeout)
	defer cancel()
	// The client's handler never blocks, so a large buffer only absorbs bursts, such
	// as the deltas of a thousand shadows on the wildcard filters.
	sub, err := c.conn.Subscribe(ctx, filter, transport.HandlerFunc(c.dispatch), transport.QoS(c.subQoS()), transport.Buffer(8192))
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
// wildcard filter replaces the named filters it covers.
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
	case !current:
		return []*transport.Subscription{sub}
	case e.refs == 0 && !e.keep:
		delete(t.entries, e.filter)
		return []*transport.Subscription{sub}
	case isWildcard(e.filter):
		return t.coveredLocked(e.filter)
	}
	return nil
}

// coveredLocked removes the named filters that wildcard covers and returns their
// subscriptions. They are all subscribed by now: no named filter is made after the
// switch, and the worker made those queued before it first.
func (t *filterTable) coveredLocked(wildcard string) []*transport.Subscription {
	var subs []*transport.Subscription
	for f, e := range t.entries {
		if !isWildcard(f) && e.sub != nil && wildcardOf(f) == wildcard {
			delete(t.entries, f)
			subs = append(subs, e.sub)
		}
	}
	return subs
}

// unsubscribe lets subs go. It is housekeeping: it must not hold up a request's
// caller for long, and a failure only leaves a subscription behind.
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
// replies of every operation on the classic or named shadows, or the delta or
// documents topic. One SUBSCRIBE of at most 8 such filters serves any number of
// shadows.
func wildcardOf(filter string) string {
	id, _, kind, ok := shadowstate.ParseTopic(filter)
	if !ok {
		return filter
	}
	named := id.Name != ""
	switch {
	case kind == shadowstate.Accepted || kind == shadowstate.Rejected:
		if named {
			return "$aws/things/+/shadow/name/+/+/" + kind
		}
		return "$aws/things/+/shadow/+/" + kind
	case named:
		return "$aws/things/+/shadow/name/+/update/" + kind
	}
	return "$aws/things/+/shadow/update/" + kind
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
