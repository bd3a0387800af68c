package jobsclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/shadowsync/shadowsync/internal/clienttoken"
	"github.com/shadowsync/shadowsync/jobstate"
	"github.com/shadowsync/shadowsync/transport"
)

// Thing is the jobs of one thing on a Client: its requests and its event callbacks.
// Get one with Client.Thing. It is safe for concurrent use; callbacks may call any of
// its methods, including blocking ones.
type Thing struct {
	c    *Client
	name string

	mu       sync.Mutex
	nextFn   int
	notifyFn map[int]func(context.Context, *jobstate.ListNotification)
	nextFns  map[int]func(context.Context, *jobstate.NextNotification)
	events   []func() // events waiting for the thing's event goroutine
	running  bool     // the event goroutine runs
}

// Name returns the thing's name.
func (t *Thing) Name() string { return t.name }

// GetPending lists the thing's pending executions (GetPendingJobExecutions): those
// IN_PROGRESS and those QUEUED, each in queue order.
func (t *Thing) GetPending(ctx context.Context) (*jobstate.GetPendingAccepted, error) {
	return request[jobstate.GetPendingAccepted](ctx, t, jobstate.OpGetPending, "", func(token string) any {
		return jobstate.GetPendingRequest{ClientToken: token}
	})
}

// StartNext starts the thing's next pending execution (StartNextPendingJobExecution)
// with req's status details and step timeout, and returns it with its job document.
// The reply's Execution is nil when nothing is pending. An execution already
// IN_PROGRESS is returned as it is. req.ClientToken is set by the client.
func (t *Thing) StartNext(ctx context.Context, req jobstate.StartNextRequest) (*jobstate.StartNextAccepted, error) {
	return request[jobstate.StartNextAccepted](ctx, t, jobstate.OpStartNext, "", func(token string) any {
		req.ClientToken = token
		return req
	})
}

// Describe returns one execution of jobID (DescribeJobExecution), or of the thing's
// next pending execution when jobID is jobstate.NextJobID ("$next"); the reply's
// Execution is then nil when nothing is pending. An execution in a terminal status is
// a rejection with Code TerminalStateReached. req.ClientToken is set by the client.
func (t *Thing) Describe(ctx context.Context, jobID string, req jobstate.DescribeRequest) (*jobstate.DescribeAccepted, error) {
	if jobID != jobstate.NextJobID {
		if err := jobstate.ValidateJobID(jobID); err != nil {
			return nil, fmt.Errorf("describe %s of %s: %w", jobID, t.name, err)
		}
	}
	return request[jobstate.DescribeAccepted](ctx, t, jobstate.OpDescribe, jobID, func(token string) any {
		req.ClientToken = token
		return req
	})
}

// Update updates the thing's execution of jobID (UpdateJobExecution): its status
// (required), status details, step timer, fenced by req.ExpectedVersion when set; a
// stale version is a rejection with Code VersionMismatch whose ExecutionState is the
// execution's current state. The reply holds the new state and the job document when
// req asks for them. req.ClientToken is set by the client.
func (t *Thing) Update(ctx context.Context, jobID string, req jobstate.UpdateRequest) (*jobstate.UpdateAccepted, error) {
	if err := jobstate.ValidateJobID(jobID); err != nil {
		return nil, fmt.Errorf("update %s of %s: %w", jobID, t.name, err)
	}
	return request[jobstate.UpdateAccepted](ctx, t, jobstate.OpUpdate, jobID, func(token string) any {
		req.ClientToken = token
		return req
	})
}

// request makes one request of t's jobs and decodes its accepted reply as an A:
// withToken builds the request around the clientToken the client chose.
func request[A any](ctx context.Context, t *Thing, op jobstate.Op, jobID string, withToken func(token string) any) (*A, error) {
	var acc A
	if err := t.do(ctx, op, jobID, withToken, &acc); err != nil {
		return nil, err
	}
	return &acc, nil
}

// OnNotify registers fn to be called with each notify event of the thing (a
// ListNotification: its pending executions, sent when one is queued or changes
// status), once the thing's topics are subscribed (OnNotify waits for that). The
// returned function unregisters fn.
func (t *Thing) OnNotify(ctx context.Context, fn func(context.Context, *jobstate.ListNotification)) (func(), error) {
	if err := t.c.subscribed(ctx, t.name, true); err != nil {
		return nil, fmt.Errorf("watch notify of %s: %w", t.name, err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.notifyFn == nil {
		t.notifyFn = make(map[int]func(context.Context, *jobstate.ListNotification))
	}
	n := t.nextFn
	t.nextFn++
	t.notifyFn[n] = fn
	return func() { t.mu.Lock(); delete(t.notifyFn, n); t.mu.Unlock() }, nil
}

// OnNotifyNext registers fn to be called with each notify-next event of the thing (a
// NextNotification: the execution now first in its queue, with its document, or none),
// as OnNotify does. Events of one thing are delivered one at a time, in order, on a
// goroutine of their own: fn may make requests.
func (t *Thing) OnNotifyNext(ctx context.Context, fn func(context.Context, *jobstate.NextNotification)) (func(), error) {
	if err := t.c.subscribed(ctx, t.name, true); err != nil {
		return nil, fmt.Errorf("watch notify-next of %s: %w", t.name, err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.nextFns == nil {
		t.nextFns = make(map[int]func(context.Context, *jobstate.NextNotification))
	}
	n := t.nextFn
	t.nextFn++
	t.nextFns[n] = fn
	return func() { t.mu.Lock(); delete(t.nextFns, n); t.mu.Unlock() }, nil
}

// post queues an event for the thing's event goroutine, starting it if needed. Events
// run apart from the subscription's goroutine, so that a callback's request can
// receive its reply.
func (t *Thing) post(f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.events = append(t.events, f)
	if !t.running {
		t.running = true
		t.c.events.Add(1)
		go t.runEvents()
	}
}

func (t *Thing) runEvents() {
	defer t.c.events.Done()
	for {
		t.mu.Lock()
		if len(t.events) == 0 {
			t.running = false
			t.mu.Unlock()
			return
		}
		f := t.events[0]
		t.events[0] = nil
		t.events = t.events[1:]
		t.mu.Unlock()
		f()
	}
}

// deliverNotify hands a notify event to the callbacks registered now.
func (t *Thing) deliverNotify(ctx context.Context, n *jobstate.ListNotification) {
	t.mu.Lock()
	fns := make([]func(context.Context, *jobstate.ListNotification), 0, len(t.notifyFn))
	for _, fn := range t.notifyFn {
		fns = append(fns, fn)
	}
	t.mu.Unlock()
	for _, fn := range fns {
		t.safely("notify", func() { fn(ctx, n) })
	}
}

// deliverNext hands a notify-next event to the callbacks registered now.
func (t *Thing) deliverNext(ctx context.Context, n *jobstate.NextNotification) {
	t.mu.Lock()
	fns := make([]func(context.Context, *jobstate.NextNotification), 0, len(t.nextFns))
	for _, fn := range t.nextFns {
		fns = append(fns, fn)
	}
	t.mu.Unlock()
	for _, fn := range fns {
		t.safely("notify-next", func() { fn(ctx, n) })
	}
}

// safely runs a user callback, logging a panic instead of letting it stop the other
// callbacks.
func (t *Thing) safely(what string, f func()) {
	defer func() {
		if r := recover(); r != nil {
			t.c.log.Error("jobs callback panicked", "thing", t.name, "callback", what, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		}
	}()
	f()
}

// pendingRequest is a request waiting for its reply.
type pendingRequest struct {
	thing string
	op    jobstate.Op
	done  chan reply // buffered: finish never blocks
	once  sync.Once
}

type reply struct {
	kind    jobstate.Kind // accepted or rejected
	payload []byte
	err     error
}

func (p *pendingRequest) finish(r reply) { p.once.Do(func() { p.done <- r }) }

// do runs one request: it makes sure the thing's topics are subscribed, publishes the
// request at QoS 1 with a fresh clientToken, and waits for the matching reply,
// decoding an acceptance into out.
func (t *Thing) do(ctx context.Context, op jobstate.Op, jobID string, build func(token string) any, out any) (err error) {
	c := t.c
	if c.opts.Observe != nil {
		start := time.Now()
		defer func() { c.opts.Observe(op, outcome(err), time.Since(start)) }()
	}
	caller := ctx
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	what := string(op) + " " + t.name
	if jobID != "" {
		what = string(op) + " " + jobID + " of " + t.name
	}
	fail := func(err error) error { return fmt.Errorf("%s: %w", what, err) }

	if !c.conn.IsOnline() {
		return fail(ErrOffline)
	}
	if err := c.subscribed(ctx, t.name, false); err != nil {
		return fail(clienttoken.WaitError(caller, err, ErrRequestTimeout, c.opts.Timeout))
	}
	token := clienttoken.New()
	payload, err := json.Marshal(build(token))
	if err != nil {
		return fail(err)
	}
	p := &pendingRequest{thing: t.name, op: op, done: make(chan reply, 1)}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return fail(ErrClientClosed)
	}
	c.pending[token] = p
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, token) // a reply arriving after this is dropped
		c.mu.Unlock()
	}()

	c.log.Debug("jobs request", "thing", t.name, "op", op, "job", jobID, "token", token)
	lost := c.conn.SessionLost()
	err = c.conn.Publish(ctx, jobstate.RequestTopic(t.name, op, jobID), payload, transport.QoS(1), transport.NoOfflineQueue())
	if errors.Is(err, transport.ErrOffline) {
		return fail(fmt.Errorf("%w: %w", ErrOffline, err))
	}
	if err != nil {
		return fail(clienttoken.WaitError(caller, err, ErrRequestTimeout, c.opts.Timeout))
	}
	select {
	case r := <-p.done:
		return decodeReply(r, out, fail)
	case <-lost:
		select {
		case r := <-p.done: // the reply came just before the loss
			return decodeReply(r, out, fail)
		default:
		}
		return fail(ErrReplyLost)
	case <-ctx.Done():
		return fail(clienttoken.WaitError(caller, ctx.Err(), ErrRequestTimeout, c.opts.Timeout))
	}
}

// decodeReply turns a request's reply into its result, decoding an acceptance into
// out and a rejection into a *jobstate.ErrorResponse.
func decodeReply(r reply, out any, fail func(error) error) error {
	switch {
	case r.err != nil:
		return fail(r.err)
	case r.kind == jobstate.KindRejected:
		var e jobstate.ErrorResponse
		if err := json.Unmarshal(r.payload, &e); err != nil {
			return fail(fmt.Errorf("malformed rejection %q: %w", r.payload, err))
		}
		return fail(&e)
	}
	if err := json.Unmarshal(r.payload, out); err != nil {
		return fail(fmt.Errorf("malformed reply %q: %w", r.payload, err))
	}
	return nil
}

// dispatch receives every message on the client's filters and routes it by topic:
// replies to the request waiting for their clientToken, events to the callbacks of
// their thing. The client's own requests, echoed by the broker, and anything
// malformed are dropped.
func (c *Client) dispatch(ctx context.Context, m transport.Message) {
	tp, ok := jobstate.ParseTopic(m.Topic)
	if !ok {
		return
	}
	switch tp.Kind {
	case jobstate.KindAccepted, jobstate.KindRejected:
		c.dispatchReply(tp, m.Payload)
	case jobstate.KindNotify:
		t := c.thing(tp.Thing)
		if t == nil {
			return
		}
		var n jobstate.ListNotification
		if err := json.Unmarshal(m.Payload, &n); err != nil {
			c.log.Warn("malformed notify dropped", "thing", tp.Thing, "error", err)
			return
		}
		t.post(func() { t.deliverNotify(ctx, &n) })
	case jobstate.KindNotifyNext:
		t := c.thing(tp.Thing)
		if t == nil {
			return
		}
		var n jobstate.NextNotification
		if err := json.Unmarshal(m.Payload, &n); err != nil {
			c.log.Warn("malformed notify-next dropped", "thing", tp.Thing, "error", err)
			return
		}
		t.post(func() { t.deliverNext(ctx, &n) })
	}
}

// dispatchReply hands a reply to the request waiting for it, if it is ours.
func (c *Client) dispatchReply(tp jobstate.Topic, payload []byte) {
	token := clienttoken.Quick(payload)
	p := c.claim(tp, token)
	if p == nil {
		full := jobstate.TokenOf(payload)
		if full == "" || full == token {
			return
		}
		if p = c.claim(tp, full); p == nil {
			return // another client's request, or one that has timed out
		}
	}
	p.finish(reply{kind: tp.Kind, payload: payload})
}

// claim removes and returns the request waiting for token if it is the one the reply
// topic tp answers; nil otherwise.
func (c *Client) claim(tp jobstate.Topic, token string) *pendingRequest {
	if token == "" {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.pending[token]
	if p == nil || p.thing != tp.Thing || p.op != tp.Op {
		return nil
	}
	delete(c.pending, token)
	return p
}
