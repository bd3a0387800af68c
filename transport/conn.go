package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shadowsync/shadowsync/internal/offlinequeue"
)

// connState is where a Conn is in its life. Only the connection loop moves it
// between down, restoring, draining and online; Close moves it to closed.
type connState int

const (
	stDown      connState = iota // no connection: publishes are queued
	stRestoring                  // connected, resubscribing: publishes are queued
	stDraining                   // resubscribed, sending the queue: publishes join its tail
	stOnline                     // queue empty: publishes go straight out
	stClosed
)

// Conn is one MQTT connection to AWS IoT (or a local broker) that reconnects by
// itself: after each reconnect it resubscribes every subscription, then sends the
// publishes queued while offline, then reports online. One goroutine, run by Start,
// owns the connection's life; everything else learns its state through
// AwaitConnection, OnOnline and OnOffline. A Conn is safe for concurrent use.
type Conn struct {
	s       *settings
	log     *slog.Logger
	dialer  *dialer
	clock   clock
	offline *offlinequeue.Offline[*outgoing]
	router  router
	limit   *limiter
	sent    atomic.Uint64 // PUBLISH messages handed to paho (Sent)
	// Lock order, where one is taken while another is held: wireMu, then mu, then
	// router.mu or handlersMu; router.mu, then a mailbox's mu. No other lock of the
	// Conn's is held while taking one (the limiter's, the notifier's, the offline
	// queue's and the batch writer's are taken alone), and none is held while a
	// handler or an OnOnline/OnOffline callback runs.
	//
	// wireMu keeps SUBSCRIBE and UNSUBSCRIBE packets in the order the router changed:
	// it is held from a subscription change until its packet is acknowledged, so an
	// UNSUBSCRIBE can never overtake the SUBSCRIBE of the same filter that follows it.
	wireMu sync.Mutex

	life       context.Context // ends at Close; handlers' ctx
	cancelLife context.CancelFunc
	started    atomic.Bool
	runDone    chan struct{} // closed when the connection loop has finished
	events     notifier

	// handlers holds every subscription whose goroutine has not returned yet, also
	// after it left the router (finish, Unsubscribe and a failed Subscribe remove it
	// and halt it without waiting), so that Close can wait for each of them.
	handlersMu sync.Mutex
	handlers   map[*Subscription]struct{}

	// background counts the goroutines a call leaves running (a late drain, the wait
	// for a withdrawn subscription's UNSUBACK); Close waits for them.
	background tracker

	mu sync.Mutex
	// held is, with Config.PersistentSession, every filter the server granted this
	// client ID and has not acknowledged removing, with its QoS: what a resumed
	// session still has.
	held     map[string]byte
	state    connState
	sess     *session      // current session while state is restoring, draining or online
	onlineCh chan struct{} // closed while online; replaced when going down
	lastErr  error         // why the last attempt or session failed
	failed   chan struct{} // closed at the first permanent connect failure before ever being online
	everUp   bool
	failOnce sync.Once
}

// New validates cfg and returns a Conn that is not connected yet; Start (or Dial)
// connects it. New starts no goroutine. Subscriptions and publishes made before the
// first connection are kept and sent once online, like those made while offline.
func New(cfg Config) (*Conn, error) {
	s, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	q, err := offlinequeue.NewOffline[*outgoing](s.OfflineQueueSize, offlinequeue.DropPolicy(s.OfflineDropPolicy))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	log := s.Logger.With("client_id", s.ClientID)
	c := &Conn{
		s:        s,
		log:      log,
		clock:    realClock{},
		offline:  q,
		router:   router{log: log},
		limit:    newLimiter(s.pubGap, s.MaxPublishRate, s.Logger),
		runDone:  make(chan struct{}),
		onlineCh: make(chan struct{}),
		failed:   make(chan struct{}),
	}
	c.dialer = &dialer{s: s, creds: &credentialSource{explicit: s.Credentials, profile: s.Profile}, now: func() time.Time { return c.clock.Now() }}
	c.life, c.cancelLife = context.WithCancel(context.Background())
	if s.Unhandled != nil {
		sub := &Subscription{
			conn: c, filter: unhandledFilter, h: s.Unhandled,
			box:  newMailbox(s.HandlerBuffer),
			quit: make(chan struct{}),
			done: make(chan struct{}),
		}
		c.router.unhandled = sub // its goroutine starts with the Conn (Start)
	}
	return c, nil
}

// Dropped returns how many incoming messages were dropped because a handler's buffer
// was full, over the Conn's life, for every subscription and Config.Unhandled
// together (Subscription.Dropped counts one). A growing count means a handler cannot
// keep up with what arrives; each drop is also logged.
func (c *Conn) Dropped() uint64 { return c.router.dropped.Load() }

// Received returns how many PUBLISH messages the Conn has received over its life,
// whether a handler took them or not: what a client costs in incoming traffic, as
// `shadowsync bench` reports per update.
func (c *Conn) Received() uint64 { return c.router.received.Load() }

// Sent returns how many PUBLISH messages the Conn has handed to the connection over
// its life (a message re-sent after a reconnect counts again).
func (c *Conn) Sent() uint64 { return c.sent.Load() }

// Throttled returns how many publishes Config.MaxPublishRate has delayed over the
// Conn's life, and how long they waited in all: a cap that slows an application
// down shows here (and in the reconciler's shadowsync_publishes_throttled_total).
func (c *Conn) Throttled() (publishes int64, waited time.Duration) {
	return c.limit.throttled.Load(), time.Duration(c.limit.waited.Load())
}

// MaxPublishRate returns the cap on outgoing publishes per second in force:
// Config.MaxPublishRate with its default filled in (AWS IoT's 100 on an AWS IoT
// endpoint), or a negative number or +Inf when publishes are not capped. The
// reconciler's connection pool sizes itself by it.
func (c *Conn) MaxPublishRate() float64 { return c.s.MaxPublishRate }

// unhandledFilter names Config.Unhandled's handler in logs; it is no topic filter.
const unhandledFilter = "(unhandled)"

// Dial creates a Conn, starts it, and waits until it is online. It fails at once on
// errors that retrying cannot fix (untrusted server certificate, refused client
// certificate, not authorized, no credentials), and otherwise keeps retrying with
// backoff until ctx ends, returning ctx's error together with the last attempt's.
// The Conn runs until Close.
func Dial(ctx context.Context, cfg Config) (*Conn, error) {
	c, err := New(cfg)
	if err != nil {
		return nil, err
	}
	go func() { _ = c.Start(context.Background()) }()
	select {
	case <-c.onlineChan():
		return c, nil
	case <-c.failed:
		err = c.LastError()
	case <-ctx.Done():
		err = c.awaitError(ctx)
	}
	closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.s.ConnectTimeout)
	defer cancel()
	_ = c.Close(closeCtx)
	return nil, fmt.Errorf("dial %s: %w", c.s.ep, err)
}

// ClientID returns the MQTT client ID in use, generated when Config.ClientID is empty.
func (c *Conn) ClientID() string { return c.s.ClientID }

// IsOnline reports whether the connection is up, resubscribed and drained.
func (c *Conn) IsOnline() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state == stOnline
}

// SessionLost returns a channel that is closed when the connection that is up now
// goes down (lost, replaced or closed); while there is no connection it returns a
// closed channel. A reply to something published over a connection comes over that
// connection or not at all (AWS IoT keeps no messages for a clean session), so a
// caller waiting for one stops waiting when the channel closes.
func (c *Conn) SessionLost() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sess == nil {
		return closedChan
	}
	return c.sess.lost
}

// closedChan is a channel that is always closed.
var closedChan = func() chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}()

// Queued returns how many publishes wait in the offline queue.
func (c *Conn) Queued() int { return c.offline.Len() }

// LastError returns why the last connect attempt or connection failed, or nil.
func (c *Conn) LastError() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastErr
}

// AwaitConnection blocks until the Conn is online (returning nil at once if it is),
// ctx ends, or the Conn is closed (ErrClosed). When ctx ends first, the error wraps
// both ctx's error and the last connect error.
func (c *Conn) AwaitConnection(ctx context.Context) error {
	c.mu.Lock()
	if c.state == stClosed {
		c.mu.Unlock()
		return ErrClosed
	}
	ch := c.onlineCh
	c.mu.Unlock()
	select {
	case <-ch:
		if !c.IsOnline() && c.isClosed() {
			return ErrClosed
		}
		return nil
	case <-c.life.Done():
		return ErrClosed
	case <-ctx.Done():
		return c.awaitError(ctx)
	}
}

func (c *Conn) awaitError(ctx context.Context) error {
	if last := c.LastError(); last != nil {
		return fmt.Errorf("await connection: %w; last attempt: %w", ctx.Err(), last)
	}
	return fmt.Errorf("await connection: %w", ctx.Err())
}

func (c *Conn) onlineChan() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.onlineCh
}

func (c *Conn) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state == stClosed
}

// Start runs the connection until ctx ends or Close is called, then disconnects and
// returns nil. It connects at once and reconnects with Config.Backoff after failures
// and losses. Start may be called once; it returns ErrStarted after that and
// ErrClosed after Close.
func (c *Conn) Start(ctx context.Context) error {
	if c.isClosed() {
		return ErrClosed
	}
	if !c.started.CompareAndSwap(false, true) {
		return ErrStarted
	}
	defer close(c.runDone)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(c.life, cancel)
	defer stop()

	var wg sync.WaitGroup
	wg.Go(func() { c.events.run() })
	defer wg.Wait()
	defer c.events.close()
	if u := c.router.unhandled; u != nil {
		c.startHandler(u)
	}

	c.run(runCtx)
	c.finish()
	return nil
}

// Close disconnects (sending DISCONNECT, bounded by Config.ConnectTimeout and ctx),
// stops every handler goroutine and every other goroutine the Conn started, and
// waits for them, within ctx: a handler still running when ctx ends is named in the
// error. Publishes still queued are dropped and
// logged. Close is idempotent and safe to call concurrently; each call waits as
// above. After it every other call returns ErrClosed.
func (c *Conn) Close(ctx context.Context) error {
	c.cancelLife()
	if c.started.CompareAndSwap(false, true) {
		// Never started: no connection loop will run finish.
		c.finish()
		close(c.runDone)
	}
	if !awaitDone(ctx, c.runDone) {
		return fmt.Errorf("close: %w", ctx.Err())
	}
	// finish has halted every subscription and emptied the router; the handlers
	// may still be running, so wait for each goroutine that has not returned.
	for _, s := range c.runningHandlers() {
		s.halt()
		if !awaitDone(ctx, s.done) {
			return fmt.Errorf("close: handler for %q still running: %w", s.filter, ctx.Err())
		}
	}
	if !awaitDone(ctx, c.background.idle()) {
		return fmt.Errorf("close: background work still running: %w", ctx.Err())
	}
	return nil
}

// tracker counts goroutines so that one can wait for all of them; unlike a
// sync.WaitGroup, a goroutine may be added while another caller waits.
type tracker struct {
	mu   sync.Mutex
	n    int
	zero chan struct{} // closed when n drops to zero; nil while nobody waits
}

// Go runs f on a goroutine of its own, counted until it returns.
func (t *tracker) Go(f func()) {
	t.mu.Lock()
	t.n++
	t.mu.Unlock()
	go func() {
		defer t.done()
		f()
	}()
}

func (t *tracker) done() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.n--
	if t.n == 0 && t.zero != nil {
		close(t.zero)
		t.zero = nil
	}
}

// idle returns a channel closed once no counted goroutine runs.
func (t *tracker) idle() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.n == 0 {
		ch := make(chan struct{})
		close(ch)
		return ch
	}
	if t.zero == nil {
		t.zero = make(chan struct{})
	}
	return t.zero
}

// startHandler runs s's goroutine and keeps s among the running handlers until it
// returns.
func (c *Conn) startHandler(s *Subscription) {
	c.handlersMu.Lock()
	if c.handlers == nil {
		c.handlers = make(map[*Subscription]struct{})
	}
	c.handlers[s] = struct{}{}
	c.handlersMu.Unlock()
	go func() {
		defer func() {
			c.handlersMu.Lock()
			delete(c.handlers, s)
			c.handlersMu.Unlock()
		}()
		s.run(c.life, c.log)
	}()
}

// runningHandlers returns the subscriptions whose goroutine has not returned yet,
// sorted by filter.
func (c *Conn) runningHandlers() []*Subscription {
	c.handlersMu.Lock()
	defer c.handlersMu.Unlock()
	subs := slices.Collect(maps.Keys(c.handlers))
	slices.SortFunc(subs, func(a, b *Subscription) int { return strings.Compare(a.filter, b.filter) })
	return subs
}

// awaitDone waits until ch is closed (true) or ctx ends (false). An already closed
// ch wins over an ended ctx, so a late ctx does not fail what is already done.
func awaitDone(ctx context.Context, ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
	}
	select {
	case <-ch:
		return true
	case <-ctx.Done():
		return false
	}
}

// finish marks the Conn closed, halts every subscription and reports what was left
// undone. It does not wait for the handlers: Close does.
func (c *Conn) finish() {
	c.cancelLife()
	c.mu.Lock()
	wasOnline := c.state == stOnline
	if !wasOnline {
		close(c.onlineCh) // wakes AwaitConnection, which then sees stClosed
	}
	c.state = stClosed
	c.mu.Unlock()
	if wasOnline && c.s.OnOffline != nil {
		c.events.post(func() { c.s.OnOffline(ErrClosed) })
	}
	if left := c.offline.Clear(); len(left) > 0 {
		c.log.Warn("closed with publishes still queued; they are dropped", "count", len(left), "first_topic", left[0].topic)
	}
	for _, s := range c.router.removeAll() {
		s.halt()
	}
}

// setStateLocked moves to st; going online wakes AwaitConnection, leaving online arms a
// new wait. It reports false if the Conn was closed meanwhile. The caller holds c.mu.
func (c *Conn) setStateLocked(st connState) bool {
	if c.state == stClosed {
		return false
	}
	switch {
	case st == stOnline && c.state != stOnline:
		close(c.onlineCh)
	case st != stOnline && c.state == stOnline:
		c.onlineCh = make(chan struct{})
	}
	c.state = st
	return true
}

// notifier runs OnOnline/OnOffline callbacks in order on one goroutine, never
// under a lock; posting never blocks.
type notifier struct {
	mu     sync.Mutex
	q      []func()
	closed bool
	wake   chan struct{}
	once   sync.Once
}

func (n *notifier) init() { n.once.Do(func() { n.wake = make(chan struct{}, 1) }) }

func (n *notifier) post(f func()) {
	n.init()
	n.mu.Lock()
	n.q = append(n.q, f)
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// close makes run return once everything posted so far has run.
func (n *notifier) close() {
	n.init()
	n.mu.Lock()
	n.closed = true
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

func (n *notifier) run() {
	n.init()
	for {
		n.mu.Lock()
		q, closed := n.q, n.closed
		n.q = nil
		n.mu.Unlock()
		for _, f := range q {
			f()
		}
		if closed && len(q) == 0 {
			return
		}
		if len(q) == 0 {
			<-n.wake
		}
	}
}

// errLost marks an operation cut short by the loss of its connection; it never
// reaches callers (publishes are requeued, subscriptions restored).
var errLost = errors.New("transport: connection lost")
