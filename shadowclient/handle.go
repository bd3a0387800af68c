package shadowclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/shadowsync/shadowsync/internal/clienttoken"
	"github.com/shadowsync/shadowsync/shadowstate"
	"github.com/shadowsync/shadowsync/transport"
)

// Handle is one shadow of a Client: its requests and its callbacks. Get one with
// Client.Shadow. It is safe for concurrent use; callbacks may call any of its
// methods, including blocking ones.
type Handle struct {
	c  *Client
	id shadowstate.ID

	mu sync.Mutex
	// lastVersion is the newest version seen in an accepted reply, a delta or a
	// documents message (-1: none). Deltas and documents strictly older than it are
	// stale and discarded; equal ones are not, unlike in the AWS IoT Device SDK for
	// Python v1 (docs/protocol.md#versions).
	lastVersion int64
	// lastDelta and lastDocs are the versions of the last delta and documents
	// message delivered (-1: none). A message on one topic arrives in the order the
	// service published it, so one with the same version is a duplicate, and one with
	// a lower version means the shadow's versions started again (the service lost or
	// restored its state): it is delivered, and what the handle has seen is reset.
	lastDelta, lastDocs int64
	nextFn              int
	deltaFns            map[int]func(context.Context, *shadowstate.DeltaMessage)
	docFns              map[int]docWatcher
	// byDocs holds the UpdateByDocuments requests in flight, by clientToken, for a
	// documents message that carries no clientToken (see confirmDocuments).
	byDocs map[string]*pendingRequest
}

// docWatcher is a callback registered with OnDocuments.
type docWatcher struct {
	fn        func(context.Context, *shadowstate.DocumentsMessage)
	stateOnly bool
}

// DocumentsOption tunes what OnDocuments delivers.
type DocumentsOption func(*docWatcher)

// StateOnly says a documents callback needs only the current state and version (and
// the message's timestamp and clientToken), as the reconciler does. The metadata and
// the previous state may then be left out — Previous, when not nil, carries only its
// version — which makes each message several times cheaper to decode. They are left
// out when every callback of the shadow asks for StateOnly.
func StateOnly() DocumentsOption { return func(w *docWatcher) { w.stateOnly = true } }

// ID returns which shadow the handle is for.
func (h *Handle) ID() shadowstate.ID { return h.id }

// UpdateOption is a per-call setting of Update.
type UpdateOption func(*shadowstate.UpdateRequest)

// ExpectVersion makes an update apply only if the shadow is at version v; otherwise the
// service rejects it with 409 Version conflict (optimistic locking). Version 0 matches
// a shadow that does not exist yet.
func ExpectVersion(v int64) UpdateOption {
	return func(r *shadowstate.UpdateRequest) { r.Version = &v }
}

// Get returns the whole shadow document. A shadow that does not exist is an *Error
// with Code 404.
func (h *Handle) Get(ctx context.Context) (*shadowstate.Document, error) {
	var doc shadowstate.Document
	if err := h.do(ctx, shadowstate.OpGet, func(token string) ([]byte, error) {
		return json.Marshal(shadowstate.TokenRequest{ClientToken: token})
	}, &doc); err != nil {
		return nil, err
	}
	h.observe(doc.Version)
	return &doc, nil
}

// Update sends an update request with the given sections (JSON text; a section left
// empty is not sent, the text null clears it) and returns the service's acceptance.
func (h *Handle) Update(ctx context.Context, state shadowstate.StateUpdate, opts ...UpdateOption) (*shadowstate.UpdateAccepted, error) {
	req := shadowstate.UpdateRequest{State: &state}
	for _, o := range opts {
		o(&req)
	}
	return h.update(ctx, req)
}

// UpdateDesired sets desired state: v is marshalled to JSON and must be an object
// (a struct, a map, or json.RawMessage). Fields set to null delete their keys.
func (h *Handle) UpdateDesired(ctx context.Context, v any, opts ...UpdateOption) (*shadowstate.UpdateAccepted, error) {
	raw, err := sectionJSON(v)
	if err != nil {
		return nil, fmt.Errorf("update desired of %v: %w", h.id, err)
	}
	return h.Update(ctx, shadowstate.StateUpdate{Desired: raw}, opts...)
}

// UpdateReported sets reported state, as UpdateDesired sets desired state.
func (h *Handle) UpdateReported(ctx context.Context, v any, opts ...UpdateOption) (*shadowstate.UpdateAccepted, error) {
	raw, err := sectionJSON(v)
	if err != nil {
		return nil, fmt.Errorf("update reported of %v: %w", h.id, err)
	}
	return h.Update(ctx, shadowstate.StateUpdate{Reported: raw}, opts...)
}

func sectionJSON(v any) (json.RawMessage, error) {
	raw, ok := v.(json.RawMessage)
	if !ok {
		var err error
		if raw, err = json.Marshal(v); err != nil {
			return nil, err
		}
	}
	var probe any
	if err := shadowstate.Unmarshal(raw, &probe); err != nil {
		return nil, fmt.Errorf("state is not JSON: %w", err)
	}
	if _, ok := probe.(shadowstate.Object); !ok {
		return nil, fmt.Errorf("state must be a JSON object, not %s", raw)
	}
	return raw, nil
}

func (h *Handle) update(ctx context.Context, req shadowstate.UpdateRequest) (*shadowstate.UpdateAccepted, error) {
	var acc shadowstate.UpdateAccepted
	if err := h.do(ctx, shadowstate.OpUpdate, func(token string) ([]byte, error) {
		req.ClientToken = token
		return encodeUpdate(req)
	}, &acc); err != nil {
		return nil, err
	}
	h.observe(acc.Version)
	return &acc, nil
}

// UpdateByDocuments sends an update fenced by version (ExpectVersion) and learns its
// acceptance from the shadow's /update/documents message instead of /update/accepted,
// so that a client watching the documents topic receives one message per update
// rather than two, and needs only the /update/rejected topic subscribed for it. The
// caller must be watching the shadow's documents messages on this client (OnDocuments,
// or a WatchFleet without a Group, whose messages all reach this client); otherwise
// the update times out.
//
// The documents message carrying the request's clientToken accepts it. For a service
// that leaves clientToken out of documents messages, the version fence decides: the
// message taking the shadow from version to version+1 is the outcome of this update
// or of another one that got there first (this one then fails with 409). matches
// tells, from that message, whether the shadow is now what this update makes of
// version — when it is, the update counts as accepted (if another writer wrote exactly
// the same, this one's 409 changes nothing of the state) — and when it is not, the
// update fails with 409 Version conflict, as the service will answer it. matches runs
// on the client's message goroutine and must be quick.
//
// The UpdateAccepted returned holds the version, the timestamp and the clientToken;
// not the state and metadata an /update/accepted reply echoes.
func (h *Handle) UpdateByDocuments(ctx context.Context, state shadowstate.StateUpdate, version int64, matches func(*shadowstate.DocumentsMessage) bool) (*shadowstate.UpdateAccepted, error) {
	req := shadowstate.UpdateRequest{State: &state, Version: &version}
	var acc shadowstate.UpdateAccepted
	err := h.run(ctx, request{
		op: shadowstate.OpUpdate,
		build: func(token string) ([]byte, error) {
			req.ClientToken = token
			return encodeUpdate(req)
		},
		out:  &acc,
		docs: &docsConfirm{version: version, matches: matches},
	})
	if err != nil {
		return nil, err
	}
	h.observe(acc.Version)
	return &acc, nil
}

// Delete deletes the shadow and returns the version it had. A shadow that does not
// exist is an *Error with Code 404.
func (h *Handle) Delete(ctx context.Context) (*shadowstate.DeleteAccepted, error) {
	var acc shadowstate.DeleteAccepted
	if err := h.do(ctx, shadowstate.OpDelete, func(token string) ([]byte, error) {
		return json.Marshal(shadowstate.TokenRequest{ClientToken: token})
	}, &acc); err != nil {
		return nil, err
	}
	// A shadow created again later may start from version 1 (after 48 hours).
	h.mu.Lock()
	h.lastVersion, h.lastDelta = -1, -1
	h.mu.Unlock()
	return &acc, nil
}

// pendingRequest is a request waiting for its reply.
type pendingRequest struct {
	id   shadowstate.ID
	op   shadowstate.Op
	docs *docsConfirm // set for UpdateByDocuments
	done chan reply   // buffered: finish never blocks
	once sync.Once
}

// docsConfirm is how an UpdateByDocuments request recognises its documents message
// when the message carries no clientToken.
type docsConfirm struct {
	version int64 // the version the update expects
	matches func(*shadowstate.DocumentsMessage) bool
}

type reply struct {
	kind    shadowstate.Kind // Accepted or Rejected
	payload []byte
	docs    *shadowstate.DocumentsMessage // the documents message that accepted an UpdateByDocuments
	err     error
}

// request is one request for do: what to send, where the answer comes from, and
// where to decode an acceptance.
type request struct {
	op    shadowstate.Op
	build func(token string) ([]byte, error)
	out   any
	docs  *docsConfirm // nil: the answer is the /accepted or /rejected reply
}

// replyKinds returns the reply topics r needs subscribed: both, or only the
// rejections for an update confirmed by its documents message.
func (r *request) replyKinds() []shadowstate.Kind {
	if r.docs != nil {
		return []shadowstate.Kind{shadowstate.Rejected}
	}
	return []shadowstate.Kind{shadowstate.Accepted, shadowstate.Rejected}
}

func (p *pendingRequest) finish(r reply) {
	p.once.Do(func() { p.done <- r })
}

// do runs one request answered on the accepted and rejected topics of op.
func (h *Handle) do(ctx context.Context, op shadowstate.Op, build func(token string) ([]byte, error), out any) error {
	return h.run(ctx, request{op: op, build: build, out: out})
}

// run runs one request: it makes sure the reply topics are subscribed, publishes the
// request at QoS 1 with a fresh clientToken, and waits for the matching reply,
// decoding an acceptance into out.
func (h *Handle) run(ctx context.Context, rq request) (err error) {
	c := h.c
	op := rq.op
	if c.opts.Observe != nil {
		start := time.Now()
		defer func() { c.opts.Observe(op, outcome(err), time.Since(start)) }()
	}
	caller := ctx
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	fail := func(err error) error { return fmt.Errorf("%s %v: %w", op, h.id, err) }

	if !c.conn.IsOnline() {
		return fail(ErrOffline)
	}
	release, err := c.subs.acquire(ctx, h.id, op, rq.replyKinds())
	if err != nil {
		return fail(clienttoken.WaitError(caller, err, ErrRequestTimeout, h.c.opts.Timeout))
	}
	defer release()

	token := clienttoken.New()
	p := &pendingRequest{id: h.id, op: op, docs: rq.docs, done: make(chan reply, 1)}
	if err := h.register(token, p); err != nil {
		return fail(err)
	}
	defer h.unregister(token, p)

	payload, err := rq.build(token)
	if err != nil {
		return fail(err)
	}
	if c.log.Enabled(ctx, slog.LevelDebug) {
		c.log.Debug("shadow request", "shadow", h.id, "op", op, "token", token)
	}
	lost := c.conn.SessionLost()
	err = c.conn.Publish(ctx, h.id.Topic(op, shadowstate.Request), payload, transport.QoS(1), transport.NoOfflineQueue())
	if errors.Is(err, transport.ErrOffline) {
		return fail(fmt.Errorf("%w: %w", ErrOffline, err))
	}
	if err != nil {
		return fail(clienttoken.WaitError(caller, err, ErrRequestTimeout, h.c.opts.Timeout))
	}
	select {
	case r := <-p.done:
		return h.reply(r, rq.out, fail)
	case <-lost:
		select {
		case r := <-p.done: // the reply came just before the loss
			return h.reply(r, rq.out, fail)
		default:
		}
		return fail(ErrReplyLost)
	case <-ctx.Done():
		return fail(clienttoken.WaitError(caller, ctx.Err(), ErrRequestTimeout, h.c.opts.Timeout))
	}
}

// register records p as waiting for the reply to token.
func (h *Handle) register(token string, p *pendingRequest) error {
	c := h.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClientClosed
	}
	c.pending[token] = p
	if p.docs != nil {
		h.mu.Lock()
		if h.byDocs == nil {
			h.byDocs = make(map[string]*pendingRequest)
		}
		h.byDocs[token] = p
		h.mu.Unlock()
	}
	return nil
}

// unregister forgets the request of token: a reply arriving after this is dropped.
func (h *Handle) unregister(token string, p *pendingRequest) {
	c := h.c
	c.mu.Lock()
	delete(c.pending, token)
	c.mu.Unlock()
	if p.docs != nil {
		h.mu.Lock()
		delete(h.byDocs, token)
		h.mu.Unlock()
	}
}

// reply turns a request's reply into its result, decoding an acceptance into out.
func (h *Handle) reply(r reply, out any, fail func(error) error) error {
	switch {
	case r.docs != nil:
		if acc, ok := out.(*shadowstate.UpdateAccepted); ok {
			*acc = shadowstate.UpdateAccepted{Version: r.docs.Current.Version, Timestamp: r.docs.Timestamp, ClientToken: r.docs.ClientToken}
		}
		return nil
	case r.err != nil:
		return fail(r.err)
	case r.kind == shadowstate.Rejected:
		var e shadowstate.Error
		if err := shadowstate.Unmarshal(r.payload, &e); err != nil {
			return fail(fmt.Errorf("malformed rejection %q: %w", r.payload, err))
		}
		return fail(&e)
	}
	if err := shadowstate.Unmarshal(r.payload, out); err != nil {
		return fail(fmt.Errorf("malformed reply %q: %w", r.payload, err))
	}
	return nil
}

// observe records a version seen in an accepted reply.
func (h *Handle) observe(v int64) {
	h.mu.Lock()
	h.lastVersion = max(h.lastVersion, v)
	h.mu.Unlock()
}

// OnDelta registers fn to be called with each /update/delta message of the shadow,
// once the delta topic is subscribed (OnDelta waits for that). Stale deltas (older than
// a version already seen) and duplicates are not delivered; a delta older than the
// last delta delivered is, because on one topic that means the shadow's versions
// started again (a shadow service that lost or restored its state), and what the
// handle has seen is reset. fn runs on the client's
// delta goroutine, one message at a time; it may call any Handle method. The returned
// function unregisters fn, the same shape as the stop of Client.WatchFleet; the
// client keeps the subscription, which other callbacks may share.
func (h *Handle) OnDelta(ctx context.Context, fn func(context.Context, *shadowstate.DeltaMessage)) (func(), error) {
	if err := h.c.subs.watch(ctx, h.id, shadowstate.DeltaKind); err != nil {
		return nil, fmt.Errorf("watch deltas of %v: %w", h.id, err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.deltaFns == nil {
		h.deltaFns = make(map[int]func(context.Context, *shadowstate.DeltaMessage))
	}
	n := h.nextFn
	h.nextFn++
	h.deltaFns[n] = fn
	return func() { h.mu.Lock(); delete(h.deltaFns, n); h.mu.Unlock() }, nil
}

// OnDocuments registers fn to be called with each /update/documents message of the
// shadow, as OnDelta does for deltas. Options may ask for less (StateOnly).
func (h *Handle) OnDocuments(ctx context.Context, fn func(context.Context, *shadowstate.DocumentsMessage), opts ...DocumentsOption) (func(), error) {
	if err := h.c.subs.watch(ctx, h.id, shadowstate.Documents); err != nil {
		return nil, fmt.Errorf("watch documents of %v: %w", h.id, err)
	}
	w := docWatcher{fn: fn}
	for _, o := range opts {
		o(&w)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.docFns == nil {
		h.docFns = make(map[int]docWatcher)
	}
	n := h.nextFn
	h.nextFn++
	h.docFns[n] = w
	return func() { h.mu.Lock(); delete(h.docFns, n); h.mu.Unlock() }, nil
}

// stateOnlyDocuments reports whether every documents callback asked for StateOnly.
func (h *Handle) stateOnlyDocuments() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stateOnlyLocked()
}

// stateOnlyLocked is stateOnlyDocuments for a caller holding h.mu.
func (h *Handle) stateOnlyLocked() bool {
	for _, w := range h.docFns {
		if !w.stateOnly {
			return false
		}
	}
	return true
}

func (h *Handle) deliverDelta(ctx context.Context, m *shadowstate.DeltaMessage) {
	h.mu.Lock()
	if m.Version < h.lastDelta {
		seen := h.lastDelta
		h.lastVersion, h.lastDelta, h.lastDocs = -1, -1, -1
		h.c.log.Warn("shadow version went backwards in a delta; "+h.c.backwardsWhy(), "shadow", h.id, "version", m.Version, "seen", seen)
	}
	if m.Version < h.lastVersion || m.Version == h.lastDelta {
		seen := h.lastVersion
		h.mu.Unlock()
		h.c.log.Debug("stale or duplicate delta dropped", "shadow", h.id, "version", m.Version, "seen", seen)
		return
	}
	h.lastDelta = m.Version
	h.lastVersion = max(h.lastVersion, m.Version)
	fns := make([]func(context.Context, *shadowstate.DeltaMessage), 0, len(h.deltaFns))
	for _, fn := range h.deltaFns {
		fns = append(fns, fn)
	}
	h.mu.Unlock()
	for _, fn := range fns {
		h.safely("delta", func() { fn(ctx, m) })
	}
}

// deliverDocuments hands m to the documents callbacks. A message decoded StateOnly
// is not delivered, and false returned, if a callback that wants the whole message
// registered after the decode was chosen: the caller decodes it again in full.
func (h *Handle) deliverDocuments(ctx context.Context, m *shadowstate.DocumentsMessage, stateOnly bool) bool {
	h.mu.Lock()
	if stateOnly && !h.stateOnlyLocked() {
		h.mu.Unlock()
		return false
	}
	switch {
	case m.Previous == nil && m.Current.Version < h.lastVersion:
		// Created again after its deletion was forgotten (48 hours): versions start
		// over, and so does what this handle has seen.
		h.lastVersion, h.lastDelta, h.lastDocs = -1, -1, -1
	case m.Current.Version < h.lastDocs:
		seen := h.lastDocs
		h.lastVersion, h.lastDelta, h.lastDocs = -1, -1, -1
		h.c.log.Warn("shadow version went backwards in a documents message; "+h.c.backwardsWhy(), "shadow", h.id, "version", m.Current.Version, "seen", seen)
	}
	if m.Current.Version < h.lastVersion {
		seen := h.lastVersion
		h.mu.Unlock()
		h.c.log.Debug("stale documents message dropped", "shadow", h.id, "version", m.Current.Version, "seen", seen)
		return true
	}
	h.lastVersion, h.lastDocs = m.Current.Version, m.Current.Version
	fns := make([]func(context.Context, *shadowstate.DocumentsMessage), 0, len(h.docFns))
	for _, w := range h.docFns {
		fns = append(fns, w.fn)
	}
	h.mu.Unlock()
	for _, fn := range fns {
		h.safely("documents", func() { fn(ctx, m) })
	}
	return true
}

// safely runs a user callback, logging a panic instead of letting it stop the other
// callbacks or the connection.
func (h *Handle) safely(what string, f func()) {
	defer func() {
		if r := recover(); r != nil {
			h.c.log.Error("shadow callback panicked", "shadow", h.id, "callback", what, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		}
	}()
	f()
}

// backwardsWhy says why a shadow's version may have gone backwards in a message. In a
// sharing Pool, two messages of one shadow may come on two connections and overtake
// each other; the handle takes the older one as it would a restored state (the
// reconciler's cache then re-reads the shadow).
func (c *Client) backwardsWhy() string {
	if c.opts.Pool.Shared() {
		return "messages overtook each other on the pool's shared subscriptions, or the service lost or restored its state"
	}
	return "the service lost or restored its state"
}
