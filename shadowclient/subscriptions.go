package shadowclient

import (
	"bytes"
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

func isWildcard(f string) bool { return strings.Contains(f, "+") }

// filterState is one topic filter the client holds or is subscribing to.
type filterState struct {
	filter  string
	ready   chan struct{} // closed once the SUBSCRIBE is answered
	err     error         // set before ready closes if it failed
	sub     *transport.Subscription
	refs    int  // requests using it, in PerRequest mode
	counted bool // held for as long as refs > 0 (PerRequest), not for good
}

// subscriptions manages the client's topic filters: by name per shadow, or by the
// wildcard filters once there are too many shadows for the connection's subscription
// cap. Its state is guarded by the client's mutex.
type subscriptions struct {
	c        *Client
	filters  map[string]*filterState
	wildcard bool       // the wildcard filters are in use (one-way)
	switchMu sync.Mutex // serialises moving to the wildcard filters
}

func (s *subscriptions) init(c *Client) {
	s.c = c
	s.filters = make(map[string]*filterState)
}

// acquire makes sure the accepted and rejected topics of op on id are subscribed,
// waiting for the SUBACK, and returns a function to call once the request is over.
func (s *subscriptions) acquire(ctx context.Context, id shadowstate.ID, op shadowstate.Op) (func(), error) {
	filters := []string{id.Topic(op, shadowstate.Accepted), id.Topic(op, shadowstate.Rejected)}
	return s.need(ctx, filters, s.c.opts.Subscriptions == PerRequest)
}

// watch makes sure the delta or documents topic of id is subscribed, for good.
func (s *subscriptions) watch(ctx context.Context, id shadowstate.ID, kind string) error {
	_, err := s.need(ctx, []string{id.Topic(shadowstate.OpUpdate, kind)}, false)
	return err
}

func (s *subscriptions) need(ctx context.Context, filters []string, counted bool) (func(), error) {
	c := s.c
	// Decide, and reserve the filters to subscribe, in one step under the lock, so
	// that concurrent requests never take more filters than the budget between them.
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClientClosed
	}
	useWildcards := s.wildcard || c.opts.Wildcards == WildcardsAlways
	if !useWildcards && c.opts.Wildcards == WildcardsAuto {
		missing := 0
		for _, f := range filters {
			if s.filters[f] == nil {
				missing++
			}
		}
		useWildcards = missing > 0 && len(s.filters)+missing > c.opts.FilterBudget
	}
	var states, owned []*filterState
	if !useWildcards {
		for _, f := range filters {
			st, isNew := s.reserveLocked(f, counted)
			states = append(states, st)
			if isNew {
				owned = append(owned, st)
				c.subWG.Add(1) // Close waits for the SUBSCRIBE
			}
		}
	}
	if useWildcards && s.wildcard && s.wildcardsReadyLocked(filters) {
		c.mu.Unlock()
		return func() {}, nil // the common case of a busy client: nothing to do
	}
	c.mu.Unlock()
	if useWildcards {
		return func() {}, s.useWildcards(ctx, filters)
	}

	release := func() {
		if counted {
			for _, st := range states {
				s.releaseOne(st)
			}
		}
	}
	for _, st := range owned {
		go s.subscribeOwned(ctx, st)
	}
	for _, st := range states {
		select {
		case <-st.ready:
		case <-ctx.Done():
			release()
			return nil, ctx.Err()
		}
		if st.err != nil {
			release()
			return nil, st.err
		}
	}
	return release, nil
}

// wildcardsReadyLocked reports whether the wildcard filters covering filters are all
// subscribed. The caller holds c.mu.
func (s *subscriptions) wildcardsReadyLocked(filters []string) bool {
	for _, f := range filters {
		st := s.filters[wildcardOf(f)]
		if st == nil {
			return false
		}
		select {
		case <-st.ready:
			if st.err != nil {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// reserveLocked returns the state of filter, creating it (isNew) when the client does
// not hold it yet; counted adds a reference. The caller holds c.mu.
func (s *subscriptions) reserveLocked(filter string, counted bool) (st *filterState, isNew bool) {
	st = s.filters[filter]
	if st == nil {
		st = &filterState{filter: filter, ready: make(chan struct{}), counted: counted}
		s.filters[filter] = st
		isNew = true
	}
	if counted {
		st.refs++
	}
	return st, isNew
}

// subscribeOwned makes the SUBSCRIBE for a filter reserved by this caller and
// publishes the result to everyone waiting on it. The SUBSCRIBE serves every request
// waiting for the filter, not only the one that started it, so it runs under the
// client's own timeout whatever becomes of that request's context. A failed filter
// is forgotten, so a later request tries again; a PerRequest filter whose requests
// all gave up meanwhile, or a filter Close dropped, is unsubscribed again.
func (s *subscriptions) subscribeOwned(ctx context.Context, st *filterState) {
	c := s.c
	defer c.subWG.Done()
	c.mu.Lock()
	if c.closed {
		st.err = ErrClientClosed
		if s.filters[st.filter] == st {
			delete(s.filters, st.filter)
		}
		c.mu.Unlock()
		close(st.ready)
		return
	}
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.Timeout)
	defer cancel()
	// The client's handler never blocks, so a large buffer only absorbs bursts, such
	// as the deltas of a thousand shadows on the wildcard filters.
	sub, err := c.conn.Subscribe(ctx, st.filter, transport.HandlerFunc(c.dispatch), transport.QoS(c.subQoS()), transport.Buffer(8192))
	if errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("%w (no SUBACK for %s within %v)", ErrRequestTimeout, st.filter, c.opts.Timeout)
	}
	c.mu.Lock()
	st.sub, st.err = sub, err
	current := s.filters[st.filter] == st
	if err != nil && current {
		delete(s.filters, st.filter)
	}
	// Unsubscribe again what nobody holds any more: a PerRequest filter whose
	// requests all left, or any filter Close dropped meanwhile.
	orphan := err == nil && (!current || st.counted && st.refs == 0)
	if orphan && current {
		delete(s.filters, st.filter)
	}
	c.mu.Unlock()
	close(st.ready)
	if orphan {
		uctx, ucancel := context.WithTimeout(context.Background(), c.opts.Timeout)
		defer ucancel()
		if err := sub.Unsubscribe(uctx); err != nil {
			c.log.Warn("unsubscribe of a filter no request waits for failed", "filter", st.filter, "error", err)
		}
	}
}

// releaseOne drops a reference taken by a PerRequest request; the last one
// unsubscribes the filter, unless the wildcard filters took over meanwhile.
func (s *subscriptions) releaseOne(st *filterState) {
	c := s.c
	c.mu.Lock()
	st.refs--
	last := st.refs == 0 && st.sub != nil && s.filters[st.filter] == st
	if last {
		delete(s.filters, st.filter)
	}
	c.mu.Unlock()
	if last {
		// Unsubscribing is housekeeping: it must not hold up the request's caller
		// for long, and a failure only leaves a subscription behind.
		ctx, cancel := context.WithTimeout(context.Background(), c.opts.Timeout)
		defer cancel()
		if err := st.sub.Unsubscribe(ctx); err != nil {
			c.log.Warn("unsubscribe after a shadow request failed", "filter", st.sub.Filter(), "error", err)
		}
	}
}

// useWildcards moves the client to wildcard filters: it subscribes to the wildcards
// covering the filters it holds and those now needed (waiting for the SUBACK), and
// then drops the filters that name single shadows. Replies that arrive twice
// meanwhile are harmless: a reply whose request is already answered is ignored, and
// a delta already delivered is recognised by its version.
func (s *subscriptions) useWildcards(ctx context.Context, needed []string) error {
	s.switchMu.Lock()
	defer s.switchMu.Unlock()
	c := s.c
	c.mu.Lock()
	want := map[string]bool{}
	for _, f := range needed {
		want[wildcardOf(f)] = true
	}
	if !s.wildcard {
		for f := range s.filters {
			want[wildcardOf(f)] = true
		}
	}
	if c.closed {
		c.mu.Unlock()
		return ErrClientClosed
	}
	var states, owned []*filterState
	for _, f := range slices.Sorted(maps.Keys(want)) {
		st, isNew := s.reserveLocked(f, false)
		states = append(states, st)
		if isNew {
			owned = append(owned, st)
			c.subWG.Add(1) // Close waits for the SUBSCRIBE
		}
	}
	c.mu.Unlock()
	for _, st := range owned {
		go s.subscribeOwned(ctx, st)
	}
	for _, st := range states {
		select {
		case <-st.ready:
		case <-ctx.Done():
			return ctx.Err()
		}
		if st.err != nil {
			return fmt.Errorf("subscribe to wildcard filter %s (the connection needs a policy that allows it, or Options.Wildcards = WildcardsNever): %w", st.filter, st.err)
		}
	}
	c.mu.Lock()
	if s.wildcard {
		c.mu.Unlock()
		return nil
	}
	s.wildcard = true
	var drop []*transport.Subscription
	for f, st := range s.filters {
		if isWildcard(f) || st.sub == nil {
			continue
		}
		delete(s.filters, f)
		drop = append(drop, st.sub)
	}
	c.mu.Unlock()
	c.log.Info("shadow client moved to wildcard subscriptions", "named_filters_dropped", len(drop))
	for _, sub := range drop {
		if err := sub.Unsubscribe(ctx); err != nil {
			c.log.Warn("unsubscribe of a per-shadow filter failed", "filter", sub.Filter(), "error", err)
		}
	}
	return nil
}

// closeAll unsubscribes every filter.
func (s *subscriptions) closeAll(ctx context.Context) error {
	c := s.c
	c.mu.Lock()
	var subs []*transport.Subscription
	for f, st := range s.filters {
		if st.sub != nil {
			subs = append(subs, st.sub)
		}
		delete(s.filters, f)
	}
	c.mu.Unlock()
	var errs []error
	for _, sub := range subs {
		if err := sub.Unsubscribe(ctx); err != nil {
			errs = append(errs, fmt.Errorf("unsubscribe %s: %w", sub.Filter(), err))
		}
	}
	return errors.Join(errs...)
}

// dispatch receives every message on the client's filters and routes it by topic:
// replies to the request waiting for their clientToken, deltas and documents to the
// callbacks of exactly that shadow. Anything malformed is logged and dropped.
func (c *Client) dispatch(ctx context.Context, m transport.Message) {
	id, op, kind, ok := shadowstate.ParseTopic(m.Topic)
	if !ok {
		c.log.Warn("message on a shadow filter with a topic that is not a shadow reply", "topic", m.Topic)
		return
	}
	switch kind {
	case shadowstate.Accepted, shadowstate.Rejected:
		p, token := c.claim(id, op, quickToken(m.Payload))
		if p == nil {
			// The quick look found nothing of ours; decode properly before deciding.
			full, err := shadowstate.ReplyToken(m.Payload)
			if err != nil || full == "" || full == token {
				return // not a reply to one of our requests
			}
			if p, token = c.claim(id, op, full); p == nil {
				c.log.Debug("reply to no request of ours ignored", "topic", m.Topic, "token", token)
				return // another client's request, or one that has timed out
			}
		}
		p.finish(reply{kind: kind, payload: m.Payload})
	case shadowstate.DeltaKind:
		h := c.handle(id)
		if h == nil {
			return
		}
		var d shadowstate.DeltaMessage
		if err := shadowstate.Unmarshal(m.Payload, &d); err != nil || d.State == nil {
			c.log.Warn("malformed delta message dropped", "shadow", id, "error", err, "payload_bytes", len(m.Payload))
			return
		}
		h.deliverDelta(ctx, &d)
	case shadowstate.Documents:
		h := c.handle(id)
		if h == nil {
			return
		}
		stateOnly := h.stateOnlyDocuments()
		for {
			var d shadowstate.DocumentsMessage
			var err error
			if stateOnly {
				err = shadowstate.UnmarshalDocumentsStateOnly(m.Payload, &d)
			} else {
				err = shadowstate.Unmarshal(m.Payload, &d)
			}
			if err != nil {
				c.log.Warn("malformed documents message dropped", "shadow", id, "error", err, "payload_bytes", len(m.Payload))
				return
			}
			if h.deliverDocuments(ctx, &d, stateOnly) || !stateOnly {
				return
			}
			stateOnly = false // a callback wanting everything came meanwhile
		}
	}
}

// claim removes and returns the request waiting for token if it is the one on id for
// op; nil otherwise.
func (c *Client) claim(id shadowstate.ID, op shadowstate.Op, token string) (*pendingRequest, string) {
	if token == "" {
		return nil, token
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.pending[token]
	if p == nil || p.id != id || p.op != op {
		return nil, token
	}
	delete(c.pending, token)
	return p, token
}

// quickToken finds the clientToken of a reply without decoding it: the tokens this
// client makes are hex digits, so they appear verbatim after the last
// "clientToken":" of the payload (the service writes it after the state). It
// returns "" when it finds no such token; the caller then decodes the payload.
func quickToken(payload []byte) string {
	const key = `"clientToken":"`
	i := bytes.LastIndex(payload, []byte(key))
	if i < 0 {
		return ""
	}
	rest := payload[i+len(key):]
	end := bytes.IndexByte(rest, '"')
	if end <= 0 || end > shadowstate.MaxClientTokenBytes {
		return ""
	}
	for _, b := range rest[:end] {
		if !(b >= '0' && b <= '9' || b >= 'a' && b <= 'f') {
			return ""
		}
	}
	return string(rest[:end])
}
