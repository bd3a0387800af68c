package shadowclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/shadowsync/shadowsync/shadowstate"
	"github.com/shadowsync/shadowsync/transport"
)

// Errors of the shadow client; match them with errors.Is. A rejection by the service
// is an *Error instead, matched with errors.As.
var (
	// ErrRequestTimeout is returned when no reply to a request arrives within
	// Options.Timeout; the wrapping error names the operation and the shadow.
	// When the caller's context ends first, its own error is returned instead.
	ErrRequestTimeout = errors.New("shadowclient: no reply from the shadow service in time")
	// ErrOffline is returned at once for a request made while the connection is down:
	// shadow requests are time-sensitive, so they never wait in the offline queue.
	ErrOffline = errors.New("shadowclient: offline; shadow requests are not queued")
	// ErrReplyLost is returned by a request whose connection was lost after the
	// request was sent and before its reply came: the reply will not come, and the
	// request may or may not have been applied (read the shadow to know).
	ErrReplyLost = errors.New("shadowclient: connection lost before the reply; the request may have been applied")
	// ErrClientClosed is returned by requests after Close.
	ErrClientClosed = errors.New("shadowclient: client closed")
)

// Subscriptions says how a Client subscribes to the reply topics of its requests.
type Subscriptions int

const (
	// Persistent subscribes to an operation's accepted and rejected topics the first
	// time the operation is used on a shadow, and keeps them: the AWS IoT Device SDK
	// for Python v1's persistent subscription, and the fastest choice.
	Persistent Subscriptions = iota
	// PerRequest subscribes before each request and unsubscribes once its reply (or
	// its timeout) has come and no other request needs the topics: the Python SDK
	// v1's non-persistent subscription, for connections short of subscriptions.
	PerRequest
)

// Wildcards says when a Client subscribes with filters that cover every thing.
type Wildcards int

const (
	// WildcardsAuto starts with filters naming each shadow and moves to wildcard
	// filters ($aws/things/+/shadow/...) once the named filters would take more than
	// Options.FilterBudget of the connection's subscriptions. This serves a
	// device with a few shadows and a service with thousands alike.
	WildcardsAuto Wildcards = iota
	// WildcardsNever always names each shadow. Devices whose AWS IoT policy allows
	// only their own topics need it once they use many shadows.
	WildcardsNever
	// WildcardsAlways uses the wildcard filters from the start (at most 12: see
	// wildcardOf).
	WildcardsAlways
)

// Options configure a Client. The zero value works.
type Options struct {
	// Subscriptions is Persistent (the zero value) or PerRequest. Wildcard filters are
	// always kept, whatever this says.
	Subscriptions Subscriptions
	// Wildcards is WildcardsAuto (the zero value), WildcardsNever or WildcardsAlways.
	Wildcards Wildcards
	// FilterBudget is how many topic filters the client may hold while it names each
	// shadow, before WildcardsAuto moves to the wildcard filters. Zero means 24,
	// about half of AWS IoT's 50 per connection, leaving the rest to the application.
	FilterBudget int
	// Timeout bounds each request on top of its ctx. Zero means 5 s, the Python SDK
	// v1's operation timeout.
	Timeout time.Duration
	// QoS0 subscribes to the shadow topics (replies, deltas, documents, fleet
	// watches) at QoS 0 instead of 1, so the broker expects no PUBACK for each of the
	// several messages a shadow update brings; requests are still published at QoS 1.
	// With the clean sessions shadowsync uses, QoS 1 brings no redelivery after a
	// reconnect either, and shadowsync re-reads what it manages when it reconnects;
	// but a broker under load may drop QoS 0 messages it would have kept at QoS 1, and
	// a lost documents message then waits for the next re-read (reconciler Options.Resync) or
	// reconnect. For services with many shadows that set a Resync period.
	QoS0 bool
	// Observe, when set, is called after every request with its operation, its
	// outcome (one of the Outcome constants) and how long it took: a hook for
	// metrics. It runs on the requester's goroutine and must return quickly.
	Observe func(op shadowstate.Op, outcome string, took time.Duration)
	// Logger receives the client's logs. Nil discards them.
	Logger *slog.Logger
	// Pool, when set, makes the client a member of a pool of clients on several
	// connections of one process, which share their wildcard filters so that each
	// message reaches the process once (see Pool). Nil means a client on its own.
	Pool *Pool
}

// The outcomes of a request that Options.Observe reports.
const (
	OutcomeAccepted = "accepted"
	OutcomeRejected = "rejected"
	OutcomeTimeout  = "timeout"
	OutcomeOffline  = "offline"
	OutcomeError    = "error"
)

// outcome classifies a request's result for Options.Observe.
func outcome(err error) string {
	var rej *shadowstate.Error
	switch {
	case err == nil:
		return OutcomeAccepted
	case errors.As(err, &rej):
		return OutcomeRejected
	case errors.Is(err, ErrRequestTimeout):
		return OutcomeTimeout
	case errors.Is(err, ErrOffline), errors.Is(err, ErrReplyLost):
		return OutcomeOffline
	}
	return OutcomeError
}

// Client speaks the Device Shadow protocol over one transport connection: get, update
// and delete for any number of classic and named shadows, correlated by clientToken
// so that any number of requests can be in flight, and delta and documents callbacks.
// Create it with New; it is safe for concurrent use.
type Client struct {
	conn *transport.Conn
	opts Options
	log  *slog.Logger

	mu      sync.Mutex
	shadows map[shadowstate.ID]*Handle
	things  map[string]int             // handles per thing, for HasShadows
	pending map[string]*pendingRequest // by clientToken
	subs    filterTable                // the filters of requests and callbacks; it has its own lock
	closed  bool
	watches map[int]func(context.Context) error // WatchFleet stops, which Close calls
	nextW   int
}

// New returns a shadow client on conn. It subscribes to nothing until the
// first request or callback needs it.
func New(conn *transport.Conn, opts Options) (*Client, error) {
	if conn == nil {
		return nil, errors.New("shadowclient: New: nil connection")
	}
	if opts.Subscriptions != Persistent && opts.Subscriptions != PerRequest {
		return nil, fmt.Errorf("shadowclient: New: unknown Subscriptions %d", opts.Subscriptions)
	}
	if opts.Wildcards < WildcardsAuto || opts.Wildcards > WildcardsAlways {
		return nil, fmt.Errorf("shadowclient: New: unknown Wildcards %d", opts.Wildcards)
	}
	if opts.FilterBudget < 0 || opts.Timeout < 0 {
		return nil, errors.New("shadowclient: New: FilterBudget and Timeout must not be negative")
	}
	if opts.FilterBudget == 0 {
		opts.FilterBudget = 24
	}
	if opts.Timeout == 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Client{
		conn:    conn,
		opts:    opts,
		log:     opts.Logger,
		shadows: make(map[shadowstate.ID]*Handle),
		things:  make(map[string]int),
		pending: make(map[string]*pendingRequest),
	}
	c.subs.init(c)
	return c, nil
}

// Shadow returns the handle of one shadow: the classic shadow of thing when name is
// "", else its named shadow. It fails for names AWS IoT would refuse. Handles are
// cheap and shared: the same shadow gets the same handle until Forget drops it.
//
// In a sharing Pool the handle of a thing another member owns is that member's: its
// requests go over the owner's connection, whose client is the one the pool hands
// the thing's replies and events to.
func (c *Client) Shadow(thing, name string) (*Handle, error) {
	id := shadowstate.ID{Thing: thing, Name: name}
	if err := id.Validate(); err != nil {
		return nil, err
	}
	if o := c.ownerOf(thing); o != c {
		return o.Shadow(thing, name)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	h := c.shadows[id]
	if h == nil {
		h = &Handle{c: c, id: id, lastVersion: -1, lastDelta: -1, lastDocs: -1}
		c.shadows[id] = h
		c.things[thing]++
	}
	return h, nil
}

// Forget drops the client's handle of a shadow unless it has callbacks, so that a
// service touching an unbounded number of shadows (a fleet) keeps memory flat. A
// later Shadow call makes a new handle.
func (c *Client) Forget(thing, name string) {
	if o := c.ownerOf(thing); o != c {
		o.Forget(thing, name)
		return
	}
	id := shadowstate.ID{Thing: thing, Name: name}
	c.mu.Lock()
	defer c.mu.Unlock()
	h := c.shadows[id]
	if h == nil {
		return
	}
	h.mu.Lock()
	idle := len(h.deltaFns) == 0 && len(h.docFns) == 0
	h.mu.Unlock()
	if idle {
		delete(c.shadows, id)
		if c.things[thing]--; c.things[thing] == 0 {
			delete(c.things, thing)
		}
	}
}

// HasShadows reports whether the client holds a handle of one of thing's shadows
// (see Shadow and Forget); in a sharing Pool, only of the client's own. A connection
// pool that places things asks it before it places a thing elsewhere than where its
// handles already are.
func (c *Client) HasShadows(thing string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.things[thing] > 0
}

// Close fails the requests in flight with ErrClientClosed and unsubscribes every
// topic the client holds, the filters of its fleet watches included. The connection
// itself stays open: it is the caller's.
func (c *Client) Close(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	for tok, p := range c.pending {
		delete(c.pending, tok)
		p.finish(reply{err: ErrClientClosed})
	}
	watches := c.watches
	c.watches = nil
	c.mu.Unlock()
	errs := []error{c.subs.close(ctx)}
	for _, stop := range watches {
		errs = append(errs, stop(ctx))
	}
	return errors.Join(errs...)
}

// subQoS is the QoS the client subscribes at.
func (c *Client) subQoS() byte {
	if c.opts.QoS0 {
		return 0
	}
	return 1
}

// handle returns the handle of id if one was made.
func (c *Client) handle(id shadowstate.ID) *Handle {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.shadows[id]
}
