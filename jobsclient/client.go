package jobsclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/shadowsync/shadowsync/jobstate"
	"github.com/shadowsync/shadowsync/transport"
)

// Errors of the jobs client; match them with errors.Is. A rejection by the service is
// a *jobstate.ErrorResponse instead, matched with errors.As.
var (
	// ErrRequestTimeout is returned when no reply to a request arrives within
	// Options.Timeout. When the caller's context ends first, its own error is
	// returned instead.
	ErrRequestTimeout = errors.New("jobsclient: no reply from the jobs service in time")
	// ErrOffline is returned at once for a request made while the connection is down:
	// jobs requests are answered only on the connection that sent them, so they never
	// wait in the offline queue.
	ErrOffline = errors.New("jobsclient: offline; jobs requests are not queued")
	// ErrReplyLost is returned by a request whose connection was lost after the
	// request was sent and before its reply came: the reply will not come, and the
	// request may or may not have been applied (Describe the execution to know).
	ErrReplyLost = errors.New("jobsclient: connection lost before the reply; the request may have been applied")
	// ErrClientClosed is returned by requests after Close.
	ErrClientClosed = errors.New("jobsclient: client closed")
)

// Wildcards says when a Client subscribes with one filter covering every thing.
type Wildcards int

const (
	// WildcardsAuto subscribes to $aws/things/{thing}/jobs/# for each thing used,
	// and moves to the one filter $aws/things/+/jobs/# once more than
	// Options.FilterBudget things are used: a device with a few things and a gateway
	// with thousands alike.
	WildcardsAuto Wildcards = iota
	// WildcardsNever always names each thing, for policies that allow a certificate
	// its own thing's topics only.
	WildcardsNever
	// WildcardsAlways uses $aws/things/+/jobs/# from the start.
	WildcardsAlways
	// WildcardsReplies subscribes once to the reply topics of every thing
	// ($aws/things/+/jobs/+/accepted and /rejected, $aws/things/+/jobs/+/+/accepted
	// and /rejected) for the requests, and to a thing's own $aws/things/{thing}/jobs/#
	// only when OnNotify or OnNotifyNext is called for it. It is the mode of a fleet
	// service (WatchFleet): no filter of it covers the events of things it did not ask
	// for by name, so a shared subscription's events are not also delivered to every
	// process of the group through a filter of its own.
	WildcardsReplies
)

// Options configure a Client. The zero value works.
type Options struct {
	// Timeout bounds each request on top of its ctx. Zero means 5 s, the Python SDK
	// v1's operation timeout.
	Timeout time.Duration
	// Wildcards is WildcardsAuto (the zero value), WildcardsNever or WildcardsAlways.
	Wildcards Wildcards
	// FilterBudget is how many things WildcardsAuto subscribes to by name before it
	// moves to the wildcard filter. Zero means 8, leaving most of AWS IoT's 50
	// subscriptions per connection to the shadow client and the application.
	FilterBudget int
	// Observe, when set, is called after every request with its operation, its
	// outcome (one of the Outcome constants) and how long it took: a hook for
	// metrics. It runs on the requester's goroutine and must return quickly.
	Observe func(op jobstate.Op, outcome string, took time.Duration)
	// Logger receives the client's logs. Nil discards them.
	Logger *slog.Logger
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
	var rej *jobstate.ErrorResponse
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

// Client speaks the jobs MQTT API over one transport connection for any number of
// things, with any number of requests in flight. Create it with New; it is safe for
// concurrent use.
//
// Subscriptions: the first request or callback of a thing subscribes to
// $aws/things/{thing}/jobs/# (or, see Wildcards, $aws/things/+/jobs/# once for all
// things) and keeps it: one filter covers the thing's replies and both events.
// The price is that the client also receives the requests it publishes itself (MQTT
// 3.1.1 has no "no local"), which it ignores.
type Client struct {
	conn *transport.Conn
	opts Options
	log  *slog.Logger

	mu      sync.Mutex
	things  map[string]*Thing
	pending map[string]*pendingRequest      // by clientToken
	named   map[string]*sub                 // by thing
	wild    *sub                            // the wildcard filter, once used
	replies *sub                            // WildcardsReplies' reply filters, once used
	fleet   map[int]*transport.Subscription // WatchFleet's, by watch
	nextW   int
	closed  bool
	events  sync.WaitGroup // event goroutines of the things
}

// sub is one topic filter of the client (several for the reply filters of
// WildcardsReplies): ready is closed once its SUBSCRIBEs are answered; err and ss may
// be read then.
type sub struct {
	filters []string
	ready   chan struct{}
	err     error
	ss      []*transport.Subscription
}

// New returns a jobs client on conn. It subscribes to nothing until the first request
// or callback needs it.
func New(conn *transport.Conn, opts Options) (*Client, error) {
	if conn == nil {
		return nil, errors.New("jobsclient: New: nil connection")
	}
	if opts.Wildcards < WildcardsAuto || opts.Wildcards > WildcardsReplies {
		return nil, fmt.Errorf("jobsclient: New: unknown Wildcards %d", opts.Wildcards)
	}
	if opts.Timeout < 0 || opts.FilterBudget < 0 {
		return nil, errors.New("jobsclient: New: Timeout and FilterBudget must not be negative")
	}
	if opts.Timeout == 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.FilterBudget == 0 {
		opts.FilterBudget = 8
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Client{
		conn:    conn,
		opts:    opts,
		log:     opts.Logger,
		things:  make(map[string]*Thing),
		pending: make(map[string]*pendingRequest),
		named:   make(map[string]*sub),
	}, nil
}

// Thing returns the handle of one thing's jobs. It fails for a name AWS IoT would
// refuse. The same thing gets the same handle.
func (c *Client) Thing(name string) (*Thing, error) {
	if err := jobstate.ValidateThingName(name); err != nil {
		return nil, fmt.Errorf("jobsclient: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.things[name]
	if t == nil {
		t = &Thing{c: c, name: name}
		c.things[name] = t
	}
	return t, nil
}

// thing returns the handle of name if one was made.
func (c *Client) thing(name string) *Thing {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.things[name]
}

// Close fails the requests in flight with ErrClientClosed, unsubscribes the client's
// filters and waits (within ctx) for event callbacks running to return. The
// connection itself stays open: it is the caller's.
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
	subs := make([]*sub, 0, len(c.named)+2)
	for _, s := range c.named {
		subs = append(subs, s)
	}
	for _, s := range []*sub{c.wild, c.replies} {
		if s != nil {
			subs = append(subs, s)
		}
	}
	fleet := make([]*transport.Subscription, 0, len(c.fleet))
	for _, s := range c.fleet {
		fleet = append(fleet, s)
	}
	c.named, c.wild, c.replies, c.fleet = map[string]*sub{}, nil, nil, nil
	c.mu.Unlock()
	var errs []error
	unsubscribe := func(s *transport.Subscription) {
		if err := s.Unsubscribe(ctx); err != nil && !errors.Is(err, transport.ErrClosed) {
			errs = append(errs, fmt.Errorf("unsubscribe %s: %w", s.Filter(), err))
		}
	}
	for _, s := range subs {
		select {
		case <-s.ready:
		case <-ctx.Done():
			return ctx.Err()
		}
		for _, ts := range s.ss {
			unsubscribe(ts)
		}
	}
	for _, s := range fleet {
		unsubscribe(s)
	}
	done := make(chan struct{})
	go func() { c.events.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("jobsclient: event callbacks still running: %w", ctx.Err()))
	}
	return errors.Join(errs...)
}

// wildcardFilter covers the jobs topics of every thing.
const wildcardFilter = "$aws/things/+/jobs/#"

// replyFilters are the filters of WildcardsReplies: the replies of every thing's
// requests (GetPending and StartNext; Describe and Update), and none of its events.
var replyFilters = []string{
	"$aws/things/+/jobs/+/accepted", "$aws/things/+/jobs/+/rejected",
	"$aws/things/+/jobs/+/+/accepted", "$aws/things/+/jobs/+/+/rejected",
}

// subscribed makes sure the jobs topics of thing are subscribed, waiting for the
// SUBACK within ctx: its replies, and its events too when events is set. Concurrent
// callers share one SUBSCRIBE; a failed one is forgotten, so that a later call tries
// again.
func (c *Client) subscribed(ctx context.Context, thing string, events bool) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClientClosed
	}
	s := c.wild
	if s == nil {
		s = c.named[thing]
	}
	if s == nil && c.opts.Wildcards == WildcardsReplies {
		switch {
		case events:
			s = &sub{filters: []string{jobstate.Prefix(thing) + "/#"}, ready: make(chan struct{})}
			c.named[thing] = s
			go c.subscribe(s, thing, false)
		case c.replies != nil:
			s = c.replies
		default:
			s = &sub{filters: replyFilters, ready: make(chan struct{})}
			c.replies = s
			go c.subscribe(s, "", true)
		}
	}
	if s == nil {
		useWild := c.opts.Wildcards == WildcardsAlways ||
			c.opts.Wildcards == WildcardsAuto && len(c.named) >= c.opts.FilterBudget
		if useWild {
			s = &sub{filters: []string{wildcardFilter}, ready: make(chan struct{})}
			c.wild = s
			c.log.Info("jobs client moves to the wildcard subscription", "named_filters", len(c.named))
		} else {
			s = &sub{filters: []string{jobstate.Prefix(thing) + "/#"}, ready: make(chan struct{})}
			c.named[thing] = s
		}
		go c.subscribe(s, thing, useWild)
	}
	c.mu.Unlock()
	select {
	case <-s.ready:
		return s.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// subscribe makes the SUBSCRIBE of s. Once the wildcard filter is subscribed, the
// named filters it covers are unsubscribed; until then both deliver, and messages of
// a named filter are dropped as soon as the wildcard filter is up.
func (c *Client) subscribe(s *sub, thing string, wild bool) {
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.Timeout)
	defer cancel()
	h := transport.HandlerFunc(c.dispatch)
	if !wild {
		h = func(ctx context.Context, m transport.Message) {
			if !c.wildUp() {
				c.dispatch(ctx, m)
			}
		}
	}
	var err error
	for _, f := range s.filters {
		ts, serr := c.conn.Subscribe(ctx, f, h, transport.QoS(1))
		if serr != nil {
			err = serr
			break
		}
		s.ss = append(s.ss, ts)
	}
	if err != nil {
		for _, ts := range s.ss {
			_ = ts.Unsubscribe(ctx)
		}
		s.ss = nil
	}
	c.mu.Lock()
	s.err = err
	var retire []*sub
	switch {
	case err != nil && c.replies == s:
		c.replies = nil
	case c.replies == s:
	case err != nil && wild && c.wild == s:
		c.wild = nil
	case err != nil && !wild && c.named[thing] == s:
		delete(c.named, thing)
	case err == nil && wild && c.wild == s:
		for _, n := range c.named {
			retire = append(retire, n)
		}
		c.named = map[string]*sub{}
	}
	close(s.ready)
	c.mu.Unlock()
	if err != nil {
		c.log.Warn("jobs subscription failed", "filters", s.filters, "error", err)
	}
	for _, n := range retire {
		<-n.ready
		for _, ts := range n.ss {
			if err := ts.Unsubscribe(ctx); err != nil {
				c.log.Debug("dropping a named jobs subscription after the move to the wildcard", "filter", ts.Filter(), "error", err)
			}
		}
	}
}

// wildUp reports whether the wildcard filter is subscribed.
func (c *Client) wildUp() bool {
	c.mu.Lock()
	s := c.wild
	c.mu.Unlock()
	if s == nil {
		return false
	}
	select {
	case <-s.ready:
		return s.err == nil
	default:
		return false
	}
}
