package reconciler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
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
	// the shadow a controller manages.
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
	// ReadConcurrency is how many shadows are read at once when the manager re-reads
	// them (on start, after a reconnect, on resync). Zero means 16.
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
}

// runnable is what the Manager runs: one typed controller.
type runnable interface {
	name() string
	start(ctx context.Context) error
	resync(ctx context.Context, why string, all bool)
	shutdown(ctx context.Context)
	awaitRereads(ctx context.Context)
}

// Manager owns one transport connection, one shadow client on it, and every
// controller registered with it; the application can use the same connection for its
// own publish/subscribe through Conn. Create it with NewManager, register controllers
// with Register, then call Start. Its methods are safe for concurrent use.
type Manager struct {
	conn   *transport.Conn
	client *shadowclient.Client
	jobs   *jobsclient.Client
	opts   Options
	log    *slog.Logger

	metrics  *metrics
	registry *prometheus.Registry

	mu          sync.Mutex
	metricsAt   net.Addr // where /metrics is served, once Start serves it
	controllers []runnable
	started     bool
	runCtx      context.Context // set by Start; controllers' work runs under it
	resyncs     chan string     // reasons to re-read every shadow
	jobThings   map[string]bool // things a job controller handles: one controller each
	jobFleet    bool            // a fleet job controller is registered: one at most
	persistent  bool            // the connection keeps a persistent session
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
	m := &Manager{opts: opts, log: opts.Logger, resyncs: make(chan string, 1), metrics: mx, registry: opts.Registry}
	if userObserve := opts.Client.Observe; userObserve != nil {
		opts.Client.Observe = func(op shadowstate.Op, outcome string, took time.Duration) {
			mx.observeRequest(op, outcome, took)
			userObserve(op, outcome, took)
		}
	} else {
		opts.Client.Observe = mx.observeRequest
	}
	if userObserve := opts.Jobs.Observe; userObserve != nil {
		opts.Jobs.Observe = func(op jobstate.Op, outcome string, took time.Duration) {
			mx.observeJobRequest(op, outcome, took)
			userObserve(op, outcome, took)
		}
	} else {
		opts.Jobs.Observe = mx.observeJobRequest
	}
	userOnline, userOffline := cfg.OnOnline, cfg.OnOffline
	var everOnline bool
	cfg.OnOnline = func() { // transport calls these on one goroutine, in order
		mx.connected.Set(1)
		if everOnline {
			mx.reconnects.Inc()
		}
		everOnline = true
		m.requestResync("connection online")
		if userOnline != nil {
			userOnline()
		}
	}
	cfg.OnOffline = func(err error) {
		mx.connected.Set(0)
		m.log.Warn("connection lost; shadows are re-read once it is back", "error", err)
		if userOffline != nil {
			userOffline(err)
		}
	}
	conn, err := transport.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("reconciler: %w", err)
	}
	mx.watchConn(conn)
	client, err := shadowclient.New(conn, opts.Client)
	if err != nil {
		return nil, fmt.Errorf("reconciler: %w", err)
	}
	jobs, err := jobsclient.New(conn, opts.Jobs)
	if err != nil {
		return nil, fmt.Errorf("reconciler: %w", err)
	}
	// Metrics are registered last, so that a NewManager that fails leaves the
	// application's registry as it was.
	if err := mx.register(opts.Registry); err != nil {
		return nil, fmt.Errorf("reconciler: register metrics: %w", err)
	}
	m.conn, m.client, m.jobs = conn, client, jobs
	m.persistent = cfg.PersistentSession
	return m, nil
}

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
// subscribe. It is started and closed by the manager.
func (m *Manager) Conn() *transport.Conn { return m.conn }

// Client returns the manager's shadow client, for shadows no controller manages.
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

// requestResync asks the manager to re-read every managed shadow. Requests made
// while a re-read is pending collapse into it.
func (m *Manager) requestResync(why string) {
	select {
	case m.resyncs <- why:
	default:
	}
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
	connDone := make(chan error, 1)
	for _, c := range controllers {
		if err := c.start(workCtx); err != nil {
			m.closeAll(controllers, cancelWork, connDone, false)
			return fmt.Errorf("reconciler: start %s: %w", c.name(), err)
		}
	}
	go func() { connDone <- m.conn.Start(workCtx) }()

	var tick <-chan time.Time
	if m.opts.Resync > 0 {
		t := time.NewTicker(m.opts.Resync)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case why := <-m.resyncs:
			for _, c := range controllers {
				c.resync(workCtx, why, false)
			}
		case <-tick:
			for _, c := range controllers {
				c.resync(workCtx, "periodic resync", true)
			}
		case <-ctx.Done():
			m.closeAll(controllers, cancelWork, connDone, true)
			return nil
		}
	}
}

// closeAll shuts the controllers down, then the client and the connection.
func (m *Manager) closeAll(controllers []runnable, cancelWork context.CancelFunc, connDone chan error, connStarted bool) {
	shutCtx, cancel := context.WithTimeout(context.Background(), m.opts.ShutdownTimeout)
	defer cancel()
	for _, c := range controllers {
		c.shutdown(shutCtx)
	}
	if err := m.jobs.Close(shutCtx); err != nil {
		m.log.Warn("closing the jobs client", "error", err)
	}
	if err := m.client.Close(shutCtx); err != nil {
		m.log.Warn("closing the shadow client", "error", err)
	}
	if err := m.conn.Close(shutCtx); err != nil {
		m.log.Warn("closing the connection", "error", err)
	}
	cancelWork()
	for _, c := range controllers {
		c.awaitRereads(shutCtx)
	}
	if connStarted {
		<-connDone
	}
	m.log.Info("reconciler stopped")
}
