package reconciler

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shadowsync/shadowsync/queue"
	"github.com/shadowsync/shadowsync/schemas"
	"github.com/shadowsync/shadowsync/shadowclient"
	"github.com/shadowsync/shadowsync/shadowstate"
)

// ControllerOptions configure one controller.
type ControllerOptions struct {
	// Name identifies the controller in logs and metrics. Empty means the name of T.
	Name string
	// Things are the things whose shadow the controller manages. At least one,
	// unless Fleet is set.
	Things []string
	// Fleet, instead of Things, makes the controller manage every thing of a fleet,
	// discovered as its events arrive, possibly shared with other processes.
	Fleet *Fleet
	// Shadow is the named shadow of each thing to manage; "" means the classic shadow.
	Shadow string
	// MaxConcurrentReconciles is how many shadows are reconciled at once. Zero means 1.
	// A reconcile that reports holds its worker until the shadow service confirms the
	// report (a round trip), so a controller reports at most this many shadows per
	// round trip: raise it for a fleet whose shadows change often (see EchoWorkers).
	MaxConcurrentReconciles int
	// RateLimiter spaces the retries of each shadow. Nil means exponential backoff from
	// 100 ms to 5 min per shadow under an overall token bucket of 100 retries per
	// second with bursts of 1,000.
	RateLimiter queue.RateLimiter[shadowstate.ID]
	// Schema controls the JSON Schema derived from T that desired state must pass
	// before Reconcile sees it. T that is not a struct gets no schema.
	Schema schemas.Options
	// StatusField, when set, makes the controller report the outcome of each
	// reconcile under this key of reported state: the desired version it handled,
	// whether it succeeded, and the error when it did not (for apps to tell "applied"
	// from "not yet" from "refused"). Empty means no status is reported.
	StatusField string
}

// Status is what a controller reports under ControllerOptions.StatusField.
type Status struct {
	// ObservedVersion is the shadow version whose desired state was last reconciled.
	ObservedVersion int64 `json:"observedVersion"`
	// OK is true when that reconcile succeeded.
	OK bool `json:"ok"`
	// Error says why it did not, naming the field for invalid desired state.
	Error string `json:"error,omitempty"`
}

// controllerMetrics are one controller's series of the metrics labelled by
// controller alone.
type controllerMetrics struct {
	queueAdds, queueRetries  prometheus.Counter
	queueDepth               prometheus.Gauge
	queueWait, reconcileTime prometheus.Observer
}

// forController looks up the series of controller name, once, at Register.
func (m *metrics) forController(name string) controllerMetrics {
	return controllerMetrics{
		queueAdds:     m.queueAdds.WithLabelValues(name),
		queueRetries:  m.queueRetries.WithLabelValues(name),
		queueDepth:    m.queueDepth.WithLabelValues(name),
		queueWait:     m.queueWait.WithLabelValues(name),
		reconcileTime: m.reconcileTime.WithLabelValues(name),
	}
}

// Controller reconciles the shadows of a list of things with one Reconciler for
// device type T. Create it with Register. Its methods are safe for concurrent use.
type Controller[T any] struct {
	m      *Manager
	opts   ControllerOptions
	r      Reconciler[T]
	schema *schemas.Schema // nil when T is not a struct
	log    *slog.Logger
	queue  *queue.Work[shadowstate.ID]

	set     *shadowSet // the shadows managed, fixed or discovered
	acks    *ackBook   // fleet events waiting for their reconcile; nil unless Fleet.PersistentSession
	workers sync.WaitGroup
	// mx are the controller's own series of the per-controller metrics, looked up
	// once rather than on every event.
	mx controllerMetrics

	// fleetWatch is what a fleet controller watches on each pooled connection, once
	// start has run.
	fleetWatch *shadowclient.FleetWatch
	// fleetAlone stops the watch of the primary connection while the pool had only it
	// (unshared, every thing's events): once the pool grows, the primary watches as
	// the others do (connAdded). Guarded by fleetMu.
	fleetAlone func()
	fleetMu    sync.Mutex

	// life serialises start, AddThing and RemoveThing; running is the ctx start was
	// given (nil until then), under which callbacks are registered.
	life    sync.Mutex
	running context.Context

	// Re-reads run per pooled connection (a lane): one re-read of a connection's
	// shadows at a time, and requests for a connection whose re-read is under way
	// collapse into one pending re-read of it, so slow re-reads never pile up
	// goroutines, and one connection's re-read (after its reconnect) never waits
	// for another's. readSem bounds the reads in flight over every lane.
	resyncMu sync.Mutex
	lanes    []*rereadLane // by connection index, made as requests name them
	readSem  chan struct{}
	rereads  sync.WaitGroup // the lanes' goroutines; the manager waits for them
}

// rereadLane is the re-reads of one pooled connection's shadows.
type rereadLane struct {
	running bool
	next    *resyncReq // the re-read pending after the running one; nil: none
}

// resyncReq is a re-read of one connection's shadows.
type resyncReq struct {
	why string
	all bool
}

// Register adds a controller for device type T to m: r reconciles the shadows of
// opts.Things. It must be called before m.Start.
func Register[T any](m *Manager, opts ControllerOptions, r Reconciler[T]) (*Controller[T], error) {
	if r == nil {
		return nil, errors.New("reconciler: Register: nil Reconciler")
	}
	t := reflect.TypeFor[T]()
	if opts.Name == "" {
		opts.Name = t.Name()
	}
	switch {
	case len(opts.Things) == 0 && opts.Fleet == nil:
		return nil, fmt.Errorf("reconciler: Register %s: no things to manage (set Things or Fleet)", opts.Name)
	case len(opts.Things) > 0 && opts.Fleet != nil:
		return nil, fmt.Errorf("reconciler: Register %s: set Things or Fleet, not both", opts.Name)
	case opts.Fleet != nil && (opts.Fleet.MaxShadows < 0 || opts.Fleet.MaxUnacked < 0 || strings.ContainsAny(opts.Fleet.Group, "/+#")):
		return nil, fmt.Errorf("reconciler: Register %s: Fleet: MaxShadows and MaxUnacked must not be negative and Group may not contain '/', '+' or '#'", opts.Name)
	case opts.Fleet != nil && opts.Fleet.PersistentSession && !m.persistent:
		return nil, fmt.Errorf("reconciler: Register %s: Fleet.PersistentSession needs a connection with a persistent session (transport.Config.PersistentSession and a ClientID stable across restarts)", opts.Name)
	}
	if opts.MaxConcurrentReconciles < 0 {
		return nil, fmt.Errorf("reconciler: Register %s: MaxConcurrentReconciles is negative", opts.Name)
	}
	if opts.MaxConcurrentReconciles == 0 {
		opts.MaxConcurrentReconciles = 1
	}
	if opts.RateLimiter == nil {
		// Per-shadow backoff as usual, under an overall bucket sized for fleets: a
		// thousand shadows failing together (a lost connection) retry within seconds,
		// about AWS IoT's 100 publishes per second per connection.
		rl, err := queue.NewRateLimiter[shadowstate.ID](queue.RateLimitOptions{QPS: 100, Burst: 1000})
		if err != nil {
			return nil, err
		}
		opts.RateLimiter = rl
	}
	c := &Controller[T]{
		m: m, opts: opts, r: r,
		log:     m.log.With("controller", opts.Name),
		queue:   queue.NewWork(queue.WorkOptions[shadowstate.ID]{RateLimiter: opts.RateLimiter}),
		set:     newShadowSet(opts.Fleet, opts.Shadow),
		mx:      m.metrics.forController(opts.Name),
		readSem: make(chan struct{}, m.opts.ReadConcurrency),
	}
	if f := opts.Fleet; f != nil && f.PersistentSession {
		c.acks = newAckBook(cmp.Or(f.MaxUnacked, DefaultMaxUnacked))
	}
	for k := t; ; k = k.Elem() {
		if k.Kind() == reflect.Struct {
			s, err := schemas.For[T](opts.Schema)
			if err != nil {
				return nil, fmt.Errorf("reconciler: Register %s: %w", opts.Name, err)
			}
			c.schema = s
		}
		if k.Kind() != reflect.Pointer {
			break
		}
	}
	for _, thing := range opts.Things {
		id := shadowstate.ID{Thing: thing, Name: opts.Shadow}
		if err := id.Validate(); err != nil {
			return nil, fmt.Errorf("reconciler: Register %s: %w", opts.Name, err)
		}
		if !c.set.add(id) {
			return nil, fmt.Errorf("reconciler: Register %s: thing %q listed twice", opts.Name, thing)
		}
	}
	// A forgotten fleet shadow's handle goes too, so memory stays flat.
	c.set.onEvict = func(id shadowstate.ID) { m.clientFor(id.Thing).Forget(id.Thing, id.Name) }
	// The listed things count before the manager can start, so that an Auto pool
	// sizes itself for them (a pool grows only with AddThing).
	for _, thing := range opts.Things {
		m.router.acquire(thing, false)
	}
	if err := m.add(c); err != nil {
		for _, thing := range opts.Things {
			m.unmanage(thing)
		}
		return nil, err
	}
	return c, nil
}

func (c *Controller[T]) name() string { return c.opts.Name }

// connAdded makes pc, a connection an Auto pool opened as it grew, watch the fleet
// as the pool's other connections do. A controller with a list of things needs
// nothing: its things are watched on their own connections as they are added.
//
// The primary connection, which watched the fleet alone before the pool grew, then
// watches it again as the others do — in the pool's shared-subscription group, or,
// on an Unshared pool, only its own things — and its first watch stops, so that an
// event does not reach the pool once on it and once more on the group.
func (c *Controller[T]) connAdded(ctx context.Context, pc *poolConn) error {
	if c.fleetWatch == nil {
		return nil
	}
	if _, err := c.watchFleetOn(ctx, pc); err != nil {
		return err
	}
	c.fleetMu.Lock()
	defer c.fleetMu.Unlock()
	if c.fleetAlone == nil {
		return nil
	}
	if _, err := c.watchFleetOn(ctx, c.m.poolConns()[0]); err != nil {
		return fmt.Errorf("watch the fleet again on the primary connection: %w", err)
	}
	c.fleetAlone()
	c.fleetAlone = nil
	return nil
}

// enqueue adds a shadow that needs a reconcile now.
func (c *Controller[T]) enqueue(id shadowstate.ID) { c.enqueueFor(id, runReconcile) }

// enqueueCheck adds a shadow whose cache an event older than it put in doubt: its
// run reads the shadow and reconciles only if the read shows a change (see
// needCheck), unless something queues it for a reconcile meanwhile.
func (c *Controller[T]) enqueueCheck(id shadowstate.ID) { c.enqueueFor(id, runCheck) }

// enqueueChange adds a shadow an event announced a change of (see runEvent).
func (c *Controller[T]) enqueueChange(id shadowstate.ID) { c.enqueueFor(id, runEvent) }

// enqueueFor adds a shadow to the queue, recording why (runReconcile, runCheck).
func (c *Controller[T]) enqueueFor(id shadowstate.ID, why int32) {
	if c.queue.ShuttingDown() {
		// An event during the shutdown: the next start re-reads every shadow anyway.
		c.log.Debug("shutdown: event not acted on", "shadow", id)
		return
	}
	if e := c.set.get(id); e != nil {
		e.queueFor(why)
		// An add while one is recorded keeps the earlier time.
		e.waitingSince.CompareAndSwap(0, time.Now().UnixNano())
	}
	c.queue.Add(id)
	c.mx.queueAdds.Inc()
	c.mx.queueDepth.Set(float64(c.queue.Len()))
}

// retry puts a shadow back with its backoff after a failure.
func (c *Controller[T]) retry(id shadowstate.ID) {
	if c.lostToShutdown(id, "retry") {
		return
	}
	// Recorded now: an event that queues the shadow before the backoff ends gets
	// the reconcile the retry is for.
	c.markReconcile(id)
	c.queue.AddRateLimited(id)
	c.mx.queueRetries.Inc()
}

// requeueAfter queues a shadow again after d, as its Reconcile asked.
func (c *Controller[T]) requeueAfter(id shadowstate.ID, d time.Duration) {
	if c.lostToShutdown(id, "requeue") {
		return
	}
	c.markReconcile(id)
	c.queue.AddAfter(id, d)
}

// markReconcile records that the shadow's next run must reconcile it.
func (c *Controller[T]) markReconcile(id shadowstate.ID) {
	if e := c.set.get(id); e != nil {
		e.queueFor(runReconcile)
	}
}

// lostToShutdown reports whether the queue has shut down, so that a retry or requeue
// asked for now will never run; it then says so in a warning and the dropped metric
// rather than letting the queue ignore it silently.
func (c *Controller[T]) lostToShutdown(id shadowstate.ID, what string) bool {
	if !c.queue.ShuttingDown() {
		return false
	}
	c.m.metrics.droppedOnClosed.Inc()
	c.log.Warn("shutdown: "+what+" not run", "shadow", id)
	return true
}

// start subscribes to the documents messages of every managed shadow (and, in a
// shared fleet, to the deltas) and starts the workers. The shadows are read once the connection is online.
func (c *Controller[T]) start(ctx context.Context) error {
	if f := c.opts.Fleet; f != nil {
		w := shadowclient.FleetWatch{
			Shadow: c.opts.Shadow,
			Group:  f.Group,
			Mirror: f.Mirror,
			// The cache keeps only the current state and version.
			DocumentsStateOnly: true,
		}
		// The group shares deltas and documents messages independently: only the delta
		// decides which member reconciles an update (applyDocuments), so only a shared
		// fleet subscribes to deltas.
		shared := c.sharedFleet()
		if c.acks == nil {
			w.OnDocuments = func(_ context.Context, id shadowstate.ID, d *shadowstate.DocumentsMessage) { c.onDocuments(id, d, nil) }
			if shared {
				w.OnDelta = func(_ context.Context, id shadowstate.ID, d *shadowstate.DeltaMessage) { c.onDelta(id, d, nil) }
			}
		} else {
			w.OnDocumentsAck = func(_ context.Context, id shadowstate.ID, d *shadowstate.DocumentsMessage, ack func()) {
				c.onDocuments(id, d, ack)
			}
			if shared {
				w.OnDeltaAck = func(_ context.Context, id shadowstate.ID, d *shadowstate.DeltaMessage, ack func()) {
					c.onDelta(id, d, ack)
				}
			}
		}
		// Every pooled connection watches the fleet. In a shared fleet each is a member
		// of the group, and the broker hands each event to one of them; a report goes
		// out on its thing's connection whichever received the event, confirmed by its
		// accepted reply there. An unshared fleet on a sharing pool joins the pool's
		// group: each event reaches one connection, whose watch hands the documents
		// message confirming a report to the thing's own client (shadowclient.Pool).
		// On a pool with Unshared, each connection receives every event and takes
		// only its own things': their reports are confirmed by the documents messages
		// this connection's watch receives.
		c.fleetWatch = &w
		pool := c.m.poolConns()
		for _, pc := range pool {
			stop, err := c.watchFleetOn(ctx, pc)
			if err != nil {
				return err
			}
			if len(pool) == 1 && !c.sharedFleet() {
				c.fleetMu.Lock()
				c.fleetAlone = stop
				c.fleetMu.Unlock()
			}
		}
	}
	c.life.Lock()
	for _, it := range c.set.all() {
		if err := c.watch(ctx, it.id, it.e); err != nil {
			c.life.Unlock()
			return err
		}
	}
	c.running = ctx
	c.life.Unlock()
	for range c.opts.MaxConcurrentReconciles {
		c.workers.Go(func() { c.work(ctx) })
	}
	c.log.Info("controller started", "shadows", c.set.len(), "fleet", c.opts.Fleet != nil, "workers", c.opts.MaxConcurrentReconciles)
	return nil
}

// watchFleetOn watches the fleet on pooled connection pc (see start).
func (c *Controller[T]) watchFleetOn(ctx context.Context, pc *poolConn) (stop func(), err error) {
	pw := *c.fleetWatch
	switch {
	case c.sharedFleet() || len(c.m.poolConns()) == 1:
	case c.m.sharing.Shared():
		pw.Group = c.m.sharing.Group()
	default:
		pw.Things = func(thing string) bool { return c.m.router.index(thing) == pc.index }
	}
	return pc.client.WatchFleet(ctx, pw)
}

// watch registers the documents callback of a listed shadow, waiting for the
// subscription, and keeps its removal on its entry. The documents message of every
// accepted update carries the whole state and version, so it is all the cache needs:
// the delta topic, which says less about the same updates, is not subscribed.
func (c *Controller[T]) watch(ctx context.Context, id shadowstate.ID, e *entry) error {
	h, err := c.m.clientFor(id.Thing).Shadow(id.Thing, id.Name)
	if err != nil {
		return err
	}
	offDocs, err := h.OnDocuments(ctx, func(_ context.Context, d *shadowstate.DocumentsMessage) { c.onDocuments(id, d, nil) }, shadowclient.StateOnly())
	if err != nil {
		return err
	}
	e.mu.Lock()
	e.unwatch = []func(){offDocs}
	e.mu.Unlock()
	return nil
}

// ErrFleetThings is returned by AddThing and RemoveThing on a fleet controller, whose
// things are discovered from their events.
var ErrFleetThings = errors.New("reconciler: a fleet controller discovers its things; AddThing and RemoveThing are for controllers with a list of things")

// AddThing makes the controller manage thing's shadow too, before or after the
// manager starts, for a gateway whose sub-devices come and go (fleet mode instead
// discovers every thing of a prefix by itself). On a running controller it subscribes
// to the shadow's documents topic (waiting, within ctx, for the broker to
// acknowledge them), then reads the shadow and reconciles it as the controller's
// start does. It fails for a thing already managed or a name AWS IoT would refuse.
func (c *Controller[T]) AddThing(ctx context.Context, thing string) error {
	if c.opts.Fleet != nil {
		return ErrFleetThings
	}
	id := shadowstate.ID{Thing: thing, Name: c.opts.Shadow}
	if err := id.Validate(); err != nil {
		return fmt.Errorf("reconciler: AddThing: %w", err)
	}
	c.life.Lock()
	defer c.life.Unlock()
	if c.queue.ShuttingDown() {
		return fmt.Errorf("reconciler: AddThing %q: the manager has stopped", thing)
	}
	if !c.set.add(id) {
		return fmt.Errorf("reconciler: AddThing: thing %q is already managed by controller %s", thing, c.opts.Name)
	}
	c.m.manage(thing)
	if c.running == nil {
		return nil // start subscribes and reads it with the others
	}
	e := c.set.get(id)
	if err := c.watch(ctx, id, e); err != nil {
		c.set.remove(id)
		c.m.unmanage(thing)
		return fmt.Errorf("reconciler: AddThing %q: %w", thing, err)
	}
	c.log.Info("thing added", "thing", thing, "shadows", c.set.len())
	c.enqueue(id) // reads the shadow, then reconciles it
	return nil
}

// RemoveThing stops managing thing's shadow: its events are ignored from now on, its
// callbacks are removed, and RemoveThing waits (within ctx) for a reconcile or Report
// of it that is running to finish, so that once it returns nothing more is written to
// the shadow by this controller. The shadow itself is left as it is. The connection
// keeps the shadow's topic subscriptions until it next rebuilds them.
func (c *Controller[T]) RemoveThing(ctx context.Context, thing string) error {
	if c.opts.Fleet != nil {
		return ErrFleetThings
	}
	id := shadowstate.ID{Thing: thing, Name: c.opts.Shadow}
	c.life.Lock()
	defer c.life.Unlock()
	e := c.set.remove(id)
	if e == nil {
		return fmt.Errorf("reconciler: RemoveThing: thing %q is not managed by controller %s", thing, c.opts.Name)
	}
	e.mu.Lock()
	unwatch := e.unwatch
	e.unwatch, e.removed = nil, true
	e.mu.Unlock()
	for _, off := range unwatch {
		off()
	}
	c.queue.Forget(id)
	if err := e.run.Lock(ctx); err != nil {
		return fmt.Errorf("reconciler: RemoveThing %q: waiting for its reconcile to finish: %w", thing, err)
	}
	e.run.Unlock()
	c.m.clientFor(id.Thing).Forget(id.Thing, id.Name)
	c.m.unmanage(thing)
	c.log.Info("thing removed", "thing", thing, "shadows", c.set.len())
	return nil
}

func (c *Controller[T]) work(ctx context.Context) {
	for {
		id, ok := c.queue.Get(ctx)
		if !ok {
			return
		}
		c.mx.queueDepth.Set(float64(c.queue.Len()))
		why := runNone
		if e := c.set.get(id); e != nil {
			if since := e.waitingSince.Swap(0); since != 0 {
				c.mx.queueWait.Observe(time.Since(time.Unix(0, since)).Seconds())
			}
			why = e.takeRunFor()
		}
		// The events that queued this shadow are covered by this run: it reads the
		// cache they updated. Later ones queue it again and are taken by that run.
		acks := c.takeAcks(id)
		start := time.Now()
		result := c.process(ctx, id, why)
		c.mx.reconcileTime.Observe(time.Since(start).Seconds())
		if result != "" {
			c.m.metrics.reconciles.WithLabelValues(c.opts.Name, result).Inc()
		}
		if ctx.Err() == nil {
			// Cut short by the shutdown, the run leaves its events unacknowledged, for
			// the persistent session to deliver again.
			for _, ack := range acks {
				ack()
			}
		}
		c.queue.Done(id)
	}
}

// shutdown stops taking new work, waits for the shadows being reconciled, and logs
// what was left undone.
func (c *Controller[T]) shutdown(ctx context.Context) {
	dropped, err := c.queue.ShutDownWithDrain(ctx)
	c.m.metrics.droppedOnClosed.Add(float64(dropped + c.queue.Len()))
	if dropped > 0 {
		c.log.Warn("shutdown: delayed reconciles not run", "count", dropped)
	}
	if err != nil {
		c.log.Warn("shutdown: reconciles still running when the shutdown timeout passed", "error", err)
	}
	if n := c.queue.Len(); n > 0 {
		c.log.Warn("shutdown: queued reconciles not run", "count", n)
	}
	done := make(chan struct{})
	go func() { c.workers.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// resync re-reads every managed shadow routed to one of conns (nil: every shadow)
// and enqueues those whose desired and reported state differ at a version no event
// has announced: deltas missed while offline are found this way. With all set (the
// periodic resync) it enqueues every shadow that differs, to reconcile drift the
// device's last reconcile left behind. Each connection's shadows are re-read on
// their own lane (see Controller.lanes).
func (c *Controller[T]) resync(ctx context.Context, why string, all bool, conns []bool) {
	n := len(c.m.poolConns())
	c.resyncMu.Lock()
	defer c.resyncMu.Unlock()
	for k := range n {
		if conns != nil && (k >= len(conns) || !conns[k]) {
			continue
		}
		for len(c.lanes) <= k {
			c.lanes = append(c.lanes, &rereadLane{})
		}
		l := c.lanes[k]
		if l.running {
			if p := l.next; p != nil {
				if !strings.Contains(p.why, why) {
					p.why += "; " + why // reasons are few: the collapsed list stays short
				}
				p.all = p.all || all
			} else {
				l.next = &resyncReq{why: why, all: all}
			}
			continue
		}
		l.running = true
		c.rereads.Go(func() {
			req := &resyncReq{why: why, all: all}
			for req != nil {
				c.reread(ctx, req.why, req.all, k, n > 1)
				c.resyncMu.Lock()
				req, l.next = l.next, nil
				if req == nil {
					l.running = false
				}
				c.resyncMu.Unlock()
			}
		})
	}
}

// awaitRereads waits, within ctx, for a re-read in progress to end; the manager
// calls it after ending the work ctx, which stops the re-read's requests.
func (c *Controller[T]) awaitRereads(ctx context.Context) {
	done := make(chan struct{})
	go func() { c.rereads.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		c.log.Warn("shutdown: a re-read of the shadows was still running when the shutdown timeout passed")
	}
}

// reread is one re-read of every shadow routed to pooled connection conn, at most
// ReadConcurrency at a time over every lane. pooled says whether the manager has
// more than one connection, for the logs.
func (c *Controller[T]) reread(ctx context.Context, why string, all bool, conn int, pooled bool) {
	sem := c.readSem
	var wg sync.WaitGroup
	var failed int
	var mu sync.Mutex
	items := c.set.all()
	kept := items[:0]
	for _, it := range items {
		if c.m.router.index(it.id.Thing) == conn {
			kept = append(kept, it)
		}
	}
	items = kept
	read := 0
	for _, it := range items {
		id, e := it.id, it.e
		if ctx.Err() != nil || c.queue.ShuttingDown() {
			break
		}
		if c.m.route(id.Thing).paceRead(ctx) != nil {
			break
		}
		read++
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := c.refresh(ctx, id, e); err != nil {
				mu.Lock()
				failed++
				mu.Unlock()
				c.log.Debug("re-read failed; the shadow is retried", "shadow", id, "error", err)
				c.retry(id)
				return
			}
			// Read again after a reconnect: failures before it (of reads and reports,
			// often the lost connection's, or of Reconcile) no longer lengthen the
			// shadow's next retry, which would otherwise wait up to minutes after a
			// short outage. A periodic resync (all) leaves the backoff alone.
			if !all {
				c.queue.Forget(id)
			}
			// A read that did not settle the cache (overtaken by an event or another
			// read while the versions are in doubt) leaves the shadow to a reconcile,
			// which reads it again.
			if !e.current() || e.needsReconcile(all) {
				c.enqueue(id)
			}
		})
	}
	wg.Wait()
	if read < len(items) {
		c.log.Info("re-read stopped by the shutdown", c.rereadAttrs(conn, pooled, "reason", why, "shadows", read, "of", len(items), "failed", failed)...)
		return
	}
	c.log.Info("shadows re-read", c.rereadAttrs(conn, pooled, "reason", why, "shadows", len(items), "failed", failed)...)
}

// rereadAttrs returns attrs, with the connection when the manager has several.
func (c *Controller[T]) rereadAttrs(conn int, pooled bool, attrs ...any) []any {
	if pooled {
		attrs = append(attrs, "conn", conn)
	}
	return attrs
}

// onDelta updates the cache with a delta and enqueues its shadow. ack, nil unless
// Fleet.PersistentSession, acknowledges the event: once the reconcile it queues has
// run, or at once when it queues none.
func (c *Controller[T]) onDelta(id shadowstate.ID, d *shadowstate.DeltaMessage, ack func()) {
	e := c.set.get(id)
	if e == nil {
		c.ackNow(ack)
		return
	}
	n := e.applyDelta(d)
	if c.debugging() {
		c.log.Debug("delta", "thing", id.Thing, "shadow", id.Name, "version", d.Version, "need", n)
	}
	c.enqueueEvent(id, n, ack)
}

// onDocuments updates the cache with a full snapshot and enqueues the shadow when it
// differs, unless the snapshot is the result of this controller's own report. ack is
// as for onDelta.
func (c *Controller[T]) onDocuments(id shadowstate.ID, d *shadowstate.DocumentsMessage, ack func()) {
	e := c.set.get(id)
	if e == nil {
		c.ackNow(ack)
		return
	}
	n := e.applyDocuments(d, c.sharedFleet())
	if c.debugging() {
		c.log.Debug("documents", "thing", id.Thing, "shadow", id.Name, "version", d.Current.Version, "need", n)
	}
	c.enqueueEvent(id, n, ack)
}

// debugging reports whether the controller's debug logs are written, so that the
// per-event ones build their attributes only then.
func (c *Controller[T]) debugging() bool {
	return c.log.Enabled(context.Background(), slog.LevelDebug)
}

// enqueueEvent queues the shadow an event was about when the event needs a
// reconcile, holding the event's ack for that reconcile; an event that needs none, or
// only a check (it is older than what the cache holds), is acknowledged at once. The
// ack is held before the shadow is queued, so the run that takes the shadow (or,
// when one is already running, the run after it) finds it.
func (c *Controller[T]) enqueueEvent(id shadowstate.ID, n need, ack func()) {
	switch n {
	case needNothing:
		c.ackNow(ack)
		return
	case needCheck:
		c.ackNow(ack)
		c.enqueueCheck(id)
		return
	}
	if ack != nil && c.acks != nil {
		if early := c.acks.hold(id, ack); early > 0 {
			c.m.metrics.acksEarly.WithLabelValues(c.opts.Name).Add(float64(early))
		}
		c.m.metrics.acksHeld.WithLabelValues(c.opts.Name).Set(float64(c.acks.len()))
	}
	c.enqueueChange(id)
}

// ackNow acknowledges an event that needs no reconcile.
func (c *Controller[T]) ackNow(ack func()) {
	if ack != nil {
		ack()
	}
}

// takeAcks returns the acks of the events waiting for id's reconcile.
func (c *Controller[T]) takeAcks(id shadowstate.ID) []func() {
	if c.acks == nil {
		return nil
	}
	acks := c.acks.take(id)
	c.m.metrics.acksHeld.WithLabelValues(c.opts.Name).Set(float64(c.acks.len()))
	return acks
}

// sharedFleet reports whether the controller shares a fleet with other processes.
func (c *Controller[T]) sharedFleet() bool {
	return c.opts.Fleet != nil && c.opts.Fleet.Group != ""
}

// refresh reads the shadow into the cache.
func (c *Controller[T]) refresh(ctx context.Context, id shadowstate.ID, e *entry) error {
	h, err := c.m.clientFor(id.Thing).Shadow(id.Thing, id.Name)
	if err != nil {
		return err
	}
	mark := e.mark()
	doc, err := h.Get(ctx)
	var rej *shadowstate.Error
	if errors.As(err, &rej) && rej.Code == 404 {
		e.setMissing(mark)
		return nil
	}
	if err != nil {
		e.invalidate()
		return err
	}
	if e.setDocument(doc, mark) {
		c.m.metrics.versionsBack.WithLabelValues(c.opts.Name).Inc()
		c.log.Warn("the shadow's version went backwards: the shadow service lost or restored its state, or the shadow was deleted and created again; reconciling what it holds now",
			"thing", id.Thing, "shadow", id.Name, "version", doc.Version)
	}
	return nil
}
