package reconciler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shadowsync/shadowsync/jobsclient"
	"github.com/shadowsync/shadowsync/jobstate"
	"github.com/shadowsync/shadowsync/shadowclient"
	"github.com/shadowsync/shadowsync/shadowstate"
	"github.com/shadowsync/shadowsync/transport"
)

// Options configure a Manager. The zero value works.
type Options struct {
	// Client configures the shadow client every controller shares (how it subscribes,
	// its request timeout, its logger); ControllerOptions.Shadow, by contrast, names
	// the shadow a controller manages. Its Pool must be nil: the manager sets it for
	// its connection pool (see Pool.Unshared).
	Client shadowclient.Options
	// Jobs configures the jobs client the job controllers share (its request timeout,
	// when it moves to a wildcard subscription); see RegisterJobs.
	Jobs jobsclient.Options
	// Resync, when positive, re-reads every managed shadow this often and reconciles
	// any that drifted (desired and reported differ). Zero means no periodic resync;
	// shadows are still re-read on start and after every reconnect.
	Resync time.Duration
	// ShutdownTimeout bounds how long Start waits, once its ctx ends, for reconciles
	// in flight to finish and their reports to be written. Zero means 30 s.
	ShutdownTimeout time.Duration
	// ReadConcurrency is how many shadows each controller reads at once when the
	// manager re-reads them (on start, after a reconnect, on resync), over all the
	// pool's connections together. Zero means 16.
	ReadConcurrency int
	// Registry receives the manager's Prometheus metrics (reconciles, work queues,
	// shadow requests, connection state); the application may register its own
	// collectors in it too. Nil means a new registry, available from Registry.
	Registry *prometheus.Registry
	// MetricsAddr, when set, serves the registry at http://MetricsAddr/metrics while
	// Start runs (":9090", "127.0.0.1:0"). Empty means metrics are not served.
	MetricsAddr string
	// Logger receives the framework's logs; Reconcile gets it, with the thing and
	// shadow attached, through Logger(ctx). Nil discards them.
	Logger *slog.Logger
	// Pool spreads the controllers' shadows over several connections, each with its
	// own publish quota (see Pool). The zero value is one connection.
	Pool Pool
}

// runnable is what the Manager runs: one typed controller.
type runnable interface {
	name() string
	start(ctx context.Context) error
	// resync re-reads the shadows routed to the connections set in conns (nil:
	// every shadow).
	resync(ctx context.Context, why string, all bool, conns []bool)
	// connAdded watches what the controller needs on pc, a connection an Auto pool
	// opened as it grew.
	connAdded(ctx context.Context, pc *poolConn) error
	shutdown(ctx context.Context)
	awaitRereads(ctx context.Context)
}

// Manager owns one transport connection (or, with Options.Pool, a pool of them), a
// shadow client on each, and every controller registered with it; the application
// can use the primary connection for its own publish/subscribe through Conn. Create
// it with NewManager, register controllers with Register, then call Start. Its
// methods are safe for concurrent use.
type Manager struct {
	conn   *transport.Conn      // the primary connection, pool[0]
	client *shadowclient.Client // its shadow client
	jobs   *jobsclient.Client
	opts   Options
	log    *slog.Logger
	cfg    transport.Config            // for the pooled connections Start opens
	pool   atomic.Pointer[[]*poolConn] // replaced as a whole when the pool is sized or grows
	router *router                     // which connection carries each thing
	// growMu serialises an Auto pool's growth with the placing of the things that
	// caused it.
	growMu sync.Mutex
	// sharing joins the pool's shadow clients (see Pool.Unshared); nil unless the
	// pool shares its wildcard subscriptions.
	sharing *shadowclient.Pool

	metrics  *metrics
	registry *prometheus.Registry

	mu          sync.Mutex
	metricsAt   net.Addr // where /metrics is served, once Start serves it
	controllers []runnable
	started     bool
	runCtx      context.Context // set by Start; controllers' work runs under it
	resyncs     chan struct{}   // a re-read is pending (resyncWhy, resyncConns)
	resyncWhy   string          // why, for the pending re-read
	resyncConns []bool          // whose shadows to re-read; nil means every connection's
	resyncAll   bool            // the pending re-read is of every shadow
	jobThings   map[string]bool // things a job controller handles: one controller each
	jobFleet    bool            // a fleet job controller is registered: one at most
	persistent  bool            // the connection keeps a persistent session
	// connCtx is the ctx Start runs the connections under (nil until Start), and
	// closing is set once they close, for an Auto pool that grows meanwhile.
	connCtx      context.Context
	closing      bool
	connsRunning sync.WaitGroup // the connections' Start
}

// ErrStarted is returned by Start when called twice, and by Register after Start.
var ErrStarted = errors.New("reconciler: manager already started")

// NewManager prepares a manager that will connect with cfg. It connects to nothing
// and starts no goroutine until Start. cfg.OnOnline and cfg.OnOffline are kept and
// called as usual.
func NewManager(cfg transport.Config, opts Options) (*Manager, error) {
	if opts.Resync < 0 || opts.ShutdownTimeout < 0 || opts.ReadConcurrency < 0 {
		return nil, errors.New("reconciler: Options: Resync, ShutdownTimeout and ReadConcurrency must not be negative")
	}
	if err := opts.Pool.validate(); err != nil {
		return nil, fmt.Errorf("reconciler: Options: %w", err)
	}
	if opts.Client.Pool != nil {
		return nil, errors.New("reconciler: Options: Client.Pool is the manager's to set (see Pool.Unshared)")
	}
	if opts.ShutdownTimeout == 0 {
		opts.ShutdownTimeout = 30 * time.Second
	}
	if opts.ReadConcurrency == 0 {
		opts.ReadConcurrency = 16
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Client.Logger == nil {
		opts.Client.Logger = opts.Logger
	}
	if opts.Jobs.Logger == nil {
		opts.Jobs.Logger = opts.Logger
	}
	if cfg.Logger == nil {
		cfg.Logger = opts.Logger
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	mx := newMetrics()
	m := &Manager{opts: opts, log: opts.Logger, resyncs: make(chan struct{}, 1), metrics: mx, registry: opts.Registry,
		router: newRouter(max(1, opts.Pool.Size))}
	// The shadow clients' Observe is set per connection (openConn), for the conn
	// label of the request metrics.
	if userObserve := opts.Jobs.Observe; userObserve != nil {
		opts.Jobs.Observe = func(op jobstate.Op, outcome string, took time.Duration) {
			mx.observeJobRequest(op, outcome, took)
			userObserve(op, outcome, took)
		}
	} else {
		opts.Jobs.Observe = mx.observeJobRequest
	}
	m.opts.Client = opts.Client
	m.cfg = cfg
	m.persistent = cfg.PersistentSession
	primary, err := m.openConn(0)
	if err != nil {
		return nil, err
	}
	m.cfg.ClientID = primary.conn.ClientID() // generated when empty: the pool derives its IDs from it
	jobs, err := jobsclient.New(primary.conn, opts.Jobs)
	if err != nil {
		return nil, fmt.Errorf("reconciler: %w", err)
	}
	pool := []*poolConn{primary}
	if opts.Pool.Size > 1 {
		if pool, err = m.openPool(pool, opts.Pool.Size); err != nil {
			return nil, err
		}
		m.share(pool)
	}
	// Metrics are registered last, so that a NewManager that fails leaves the
	// application's registry as it was.
	if err := mx.register(opts.Registry, m.poolConns); err != nil {
		return nil, fmt.Errorf("reconciler: register metrics: %w", err)
	}
	m.conn, m.client, m.jobs = primary.conn, primary.client, jobs
	m.pool.Store(&pool)
	return m, nil
}

// openConn creates pooled connection i (0: the primary, with the configured client
// ID and the application's callbacks) and the shadow client on it.
func (m *Manager) openConn(i int) (*poolConn, error) {
	cfg, mx := m.cfg, m.metrics
	label := strconv.Itoa(i)
	userOnline, userOffline := cfg.OnOnline, cfg.OnOffline
	if i > 0 {
		// The application's callbacks, will and unhandled messages are the primary
		// connection's: it is the one the application uses (Conn).
		cfg.ClientID = poolClientID(cfg.ClientID, i)
		userOnline, userOffline, cfg.Will, cfg.Unhandled = nil, nil, nil, nil
	}
	connected, reconnects := mx.connected.WithLabelValues(label), mx.reconnects.WithLabelValues(label)
	connected.Set(0)
	var everOnline bool
	cfg.OnOnline = func() { // transport calls these on one goroutine, in order
		connected.Set(1)
		if everOnline {
			reconnects.Inc()
		}
		everOnline = true
		m.requestResync("connection online", i)
		if userOnline != nil {
			userOnline()
		}
	}
	cfg.OnOffline = func(err error) {
		connected.Set(0)
		m.log.Warn("connection lost; its shadows are re-read once it is back", "conn", i, "error", err)
		if userOffline != nil {
			userOffline(err)
		}
	}
	conn, err := transport.New(cfg)
	if err != nil {
		if i > 0 {
			return nil, fmt.Errorf("reconciler: pooled connection %d: %w", i, err)
		}
		return nil, fmt.Errorf("reconciler: %w", err)
	}
	if i == 0 && m.opts.Pool.shares() {
		// The group is named after the primary's client ID, known now (transport
		// generates one when the configuration has none): unique to this pool.
		m.sharing, err = shadowclient.NewPool(poolGroup(conn.ClientID()), func(thing string, _ int) int { return m.router.index(thing) })
		if err != nil {
			return nil, fmt.Errorf("reconciler: %w", err)
		}
		m.opts.Client.Pool = m.sharing
	}
	copts := m.opts.Client
	userObserve := copts.Observe
	requests := mx.requestsOn(label)
	copts.Observe = func(op shadowstate.Op, outcome string, took time.Duration) {
		requests.observe(op, outcome, took)
		if userObserve != nil {
			userObserve(op, outcome, took)
		}
	}
	client, err := shadowclient.New(conn, copts)
	if err != nil {
		return nil, fmt.Errorf("reconciler: %w", err)
	}
	return newPoolConn(i, conn, client), nil
}

// openPool adds connections to pool until it holds n.
func (m *Manager) openPool(pool []*poolConn, n int) ([]*poolConn, error) {
	for i := len(pool); i < n; i++ {
		pc, err := m.openConn(i)
		if err != nil {
			return nil, err
		}
		pool = append(pool, pc)
	}
	return pool, nil
}

// share makes the clients of pool the members of the sharing pool, if the pool
// shares. It runs before any request, so every wildcard filter is subscribed shared
// once the pool has two connections.
func (m *Manager) share(pool []*poolConn) {
	if m.sharing == nil {
		return
	}
	clients := make([]*shadowclient.Client, len(pool))
	for i, pc := range pool {
		clients[i] = pc.client
	}
	m.sharing.Set(clients...)
}

// poolConns returns the connections of the pool, the primary first.
func (m *Manager) poolConns() []*poolConn {
	if p := m.pool.Load(); p != nil {
		return *p
	}
	return nil
}

// route returns the connection that carries thing's shadows.
func (m *Manager) route(thing string) *poolConn {
	return m.poolConns()[m.router.index(thing)]
}

// clientFor returns the shadow client of the connection that carries thing's
// shadows.
func (m *Manager) clientFor(thing string) *shadowclient.Client { return m.route(thing).client }

// PoolSize returns how many connections the manager uses: Options.Pool.Size, or
// for an Auto pool the size Start chose (1 until then), or grew it to since.
func (m *Manager) PoolSize() int { return len(m.poolConns()) }

// PoolConn returns the connection that carries thing's shadows (and those of its
// named shadows): Conn for a manager without a pool. Which connection that is
// stays the same while the pool's size does, and, for a thing a controller lists,
// while it lists it, even when an Auto pool grows.
func (m *Manager) PoolConn(thing string) *transport.Conn { return m.route(thing).conn }

// Registry returns the registry holding the manager's metrics.
func (m *Manager) Registry() *prometheus.Registry { return m.registry }

// MetricsAddr returns the address /metrics is served on, once Start serves it (nil
// before, or when Options.MetricsAddr is empty).
func (m *Manager) MetricsAddr() net.Addr {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.metricsAt
}

// Conn returns the manager's connection, for the application's own publish and
// subscribe; with a pool, the primary connection (pool connection 0, with the
// configured client ID). It is started and closed by the manager.
func (m *Manager) Conn() *transport.Conn { return m.conn }

// Client returns the manager's shadow client, for shadows no controller manages:
// with a pool, the primary connection's, whose handles of a thing routed to another
// connection are that connection's client's (see shadowclient.Client.Shadow), so
// their requests use the connection the pool delivers their replies to.
func (m *Manager) Client() *shadowclient.Client { return m.client }

// Jobs returns the manager's jobs client, for things no job controller handles.
func (m *Manager) Jobs() *jobsclient.Client { return m.jobs }

func (m *Manager) add(r runnable) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.started {
		return ErrStarted
	}
	m.controllers = append(m.controllers, r)
	return nil
}

// requestResync asks the manager to re-read the managed shadows routed to pooled
// connection conn (-1: every shadow). Requests made while a re-read is pending
// collapse into it.
func (m *Manager) requestResync(why string, conn int) {
	m.mu.Lock()
	switch {
	case conn < 0 || m.resyncAll:
		m.resyncAll, m.resyncConns = true, nil
	default:
		if len(m.resyncConns) <= conn {
			m.resyncConns = append(m.resyncConns, make([]bool, conn+1-len(m.resyncConns))...)
		}
		m.resyncConns[conn] = true
	}
	if !strings.Contains(m.resyncWhy, why) {
		if m.resyncWhy != "" {
			m.resyncWhy += "; "
		}
		m.resyncWhy += why
	}
	m.mu.Unlock()
	select {
	case m.resyncs <- struct{}{}:
	default:
	}
}

// takeResync returns the pending re-read's reason and connections (nil: all), and
// whether one is pending. One may not be: two connections coming online together
// each signal, and the first signal can take both requests before the second
// signal is sent; that signal then finds nothing, and must not be taken for a
// re-read of every shadow.
func (m *Manager) takeResync() (why string, conns []bool, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.resyncAll && m.resyncConns == nil {
		return "", nil, false
	}
	why, conns = m.resyncWhy, m.resyncConns
	if m.resyncAll || len(m.poolConns()) == 1 {
		conns = nil
	}
	m.resyncWhy, m.resyncConns, m.resyncAll = "", nil, false
	return why, conns, true
}

// Start runs the controllers and the connection until ctx ends, then shuts down:
// it stops taking new work, lets reconciles in flight finish (within
// Options.ShutdownTimeout), logs anything left undone, closes the shadow client and
// the connection, and returns nil. It returns an error at once if a controller cannot
// start.
func (m *Manager) Start(ctx context.Context) error {
	m.mu.Lock()
	if m.started {
		m.mu.Unlock()
		return ErrStarted
	}
	m.started = true
	controllers := append([]runnable(nil), m.controllers...)
	m.mu.Unlock()
	if err := m.sizePool(); err != nil {
		m.closeConns()
		return err
	}
	pool := m.poolConns()

	// Work runs under a ctx that outlives ctx by the shutdown timeout, so that
	// reconciles in flight can finish and report.
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()

	if m.opts.MetricsAddr != "" {
		stop, addr, err := serveMetrics(m.opts.MetricsAddr, m.registry, m.log)
		if err != nil {
			return fmt.Errorf("reconciler: serve metrics on %s: %w", m.opts.MetricsAddr, err)
		}
		defer stop()
		m.mu.Lock()
		m.metricsAt = addr
		m.mu.Unlock()
		m.log.Info("serving metrics", "url", "http://"+addr.String()+"/metrics")
	}
	for _, c := range controllers {
		if err := c.start(workCtx); err != nil {
			m.closeAll(controllers, cancelWork)
			return fmt.Errorf("reconciler: start %s: %w", c.name(), err)
		}
	}
	m.mu.Lock()
	m.connCtx = workCtx
	for _, pc := range pool {
		m.connsRunning.Go(func() { _ = pc.conn.Start(workCtx) })
	}
	m.mu.Unlock()
	if len(pool) > 1 {
		m.log.Info("connection pool started", "connections", len(pool))
	}

	var tick <-chan time.Time
	if m.opts.Resync > 0 {
		t := time.NewTicker(m.opts.Resync)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-m.resyncs:
			why, conns, ok := m.takeResync()
			if !ok {
				continue
			}
			for _, c := range controllers {
				c.resync(workCtx, why, false, conns)
			}
		case <-tick:
			for _, c := range controllers {
				c.resync(workCtx, "periodic resync", true, nil)
			}
		case <-ctx.Done():
			m.closeAll(controllers, cancelWork)
			return nil
		}
	}
}

// sizePool opens the connections of an Auto pool, sized by the shadows the
// controllers manage.
func (m *Manager) sizePool() error {
	p := m.opts.Pool
	if !p.Auto {
		return nil
	}
	shadows := p.FleetShadows + m.router.listed()
	n, capped := p.autoSize(shadows, m.conn.MaxPublishRate())
	if capped {
		m.log.Warn("the connection pool the load needs is larger than Pool.MaxSize; capped", "max_size", n, "shadows", shadows, "change_every", p.ChangeEvery)
	}
	pool, err := m.openPool(m.poolConns(), n)
	if err != nil {
		return err
	}
	m.share(pool)
	m.pool.Store(&pool) // before the router routes anything to the new connections
	m.router.resize(n)
	m.log.Info("connection pool sized", "connections", n, "shadows", shadows, "change_every", p.ChangeEvery, "max_publish_rate", m.conn.MaxPublishRate())
	return nil
}

// closeConns closes every client and connection of the pool, for a Start that
// fails before it started them.
func (m *Manager) closeConns() {
	ctx, cancel := context.WithTimeout(context.Background(), m.opts.ShutdownTimeout)
	defer cancel()
	_ = m.jobs.Close(ctx)
	for _, pc := range m.poolConns() {
		_ = pc.client.Close(ctx)
		_ = pc.conn.Close(ctx)
	}
}

// closeAll shuts the controllers down, then the clients and the connections.
func (m *Manager) closeAll(controllers []runnable, cancelWork context.CancelFunc) {
	shutCtx, cancel := context.WithTimeout(context.Background(), m.opts.ShutdownTimeout)
	defer cancel()
	m.mu.Lock()
	m.closing = true // the pool grows no more
	m.mu.Unlock()
	for _, c := range controllers {
		c.shutdown(shutCtx)
	}
	if err := m.jobs.Close(shutCtx); err != nil {
		m.log.Warn("closing the jobs client", "error", err)
	}
	pool := m.poolConns()
	var closing sync.WaitGroup
	for _, pc := range pool {
		closing.Go(func() {
			if err := pc.client.Close(shutCtx); err != nil {
				m.log.Warn("closing the shadow client", "conn", pc.index, "error", err)
			}
			if err := pc.conn.Close(shutCtx); err != nil {
				m.log.Warn("closing the connection", "conn", pc.index, "error", err)
			}
		})
	}
	closing.Wait()
	cancelWork()
	for _, c := range controllers {
		c.awaitRereads(shutCtx)
	}
	m.connsRunning.Wait()
	m.log.Info("reconciler stopped")
}

// manage counts a shadow of thing that a controller lists, and routes thing: once
// Start has run, an Auto pool first grows when the shadows listed need another
// connection, and a thing new to a grown pool is placed on its least loaded one.
func (m *Manager) manage(thing string) {
	m.growMu.Lock()
	defer m.growMu.Unlock()
	m.growFor(m.router.listed() + 1)
	hashed := false
	if m.router.grown.Load() {
		hashed = m.poolConns()[route(thing, int(m.router.base.Load()))].client.HasShadows(thing)
	}
	m.router.acquire(thing, hashed)
}

// unmanage uncounts a shadow of thing that a controller no longer lists. The pool
// does not shrink.
func (m *Manager) unmanage(thing string) {
	m.router.release(thing, func(conn int) bool { return m.poolConns()[conn].client.HasShadows(thing) })
}

// growFor grows a started Auto pool to the size listed shadows (plus
// Pool.FleetShadows) need. A pool that cannot open a connection stays as it is,
// with an error logged: its shadows are carried, more slowly, by the connections
// it has.
func (m *Manager) growFor(listed int) {
	p := m.opts.Pool
	if !p.Auto {
		return
	}
	m.mu.Lock()
	started, closing := m.connCtx != nil, m.closing
	m.mu.Unlock()
	if !started || closing {
		return // Start sizes the pool from every listed shadow
	}
	shadows := listed + p.FleetShadows
	n, capped := p.autoSize(shadows, m.conn.MaxPublishRate())
	pool := m.poolConns()
	if n <= len(pool) {
		return
	}
	if capped { // once: the pool then has MaxSize connections, and grows no more
		m.log.Warn("the connection pool the load needs is larger than Pool.MaxSize; capped", "max_size", n, "shadows", shadows, "change_every", p.ChangeEvery)
	}
	m.mu.Lock()
	if m.closing {
		m.mu.Unlock()
		return
	}
	grown, err := m.openPool(slices.Clone(pool), n)
	if err != nil {
		m.mu.Unlock()
		m.log.Error("the connection pool cannot grow; its connections carry the new shadows", "connections", len(pool), "want", n, "error", err)
		return
	}
	m.share(grown)
	m.pool.Store(&grown) // before the router places anything on the new connections
	m.router.grow(n)
	ctx := m.connCtx
	added := grown[len(pool):]
	for _, pc := range added {
		m.connsRunning.Go(func() { _ = pc.conn.Start(ctx) })
	}
	controllers := append([]runnable(nil), m.controllers...)
	m.mu.Unlock()
	m.log.Info("connection pool grown", "connections", n, "was", len(pool), "shadows", shadows, "change_every", p.ChangeEvery)
	for _, c := range controllers {
		for _, pc := range added {
			if err := c.connAdded(ctx, pc); err != nil {
				m.log.Error("a grown pool's connection does not watch what the controller needs", "controller", c.name(), "conn", pc.index, "error", err)
			}
		}
	}
}
