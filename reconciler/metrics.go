package reconciler

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/shadowsync/shadowsync/jobstate"
	"github.com/shadowsync/shadowsync/shadowclient"
	"github.com/shadowsync/shadowsync/shadowstate"
)

// metrics are the Prometheus collectors of one Manager and its controllers.
type metrics struct {
	reconciles      *prometheus.CounterVec   // by controller and result
	reconcileTime   *prometheus.HistogramVec // by controller
	queueDepth      *prometheus.GaugeVec     // by controller
	queueAdds       *prometheus.CounterVec   // by controller
	queueRetries    *prometheus.CounterVec   // by controller
	queueWait       *prometheus.HistogramVec // by controller
	shadowRequests  *prometheus.CounterVec   // by conn, operation and outcome
	shadowLatency   *prometheus.HistogramVec // by conn and operation
	connected       *prometheus.GaugeVec     // by conn
	reconnects      *prometheus.CounterVec   // by conn
	invalidDesired  *prometheus.CounterVec   // by controller
	droppedOnClosed prometheus.Counter
	versionsBack    *prometheus.CounterVec   // by controller
	acksHeld        *prometheus.GaugeVec     // by controller
	acksEarly       *prometheus.CounterVec   // by controller
	jobsStarted     *prometheus.CounterVec   // by controller
	jobsFinished    *prometheus.CounterVec   // by controller and status
	jobDuration     *prometheus.HistogramVec // by controller
	jobRequests     *prometheus.CounterVec   // by operation and outcome
}

// How a job handled by a job controller ended, the "status" label of
// shadowsync_jobs_finished_total.
const (
	jobSucceeded   = "succeeded"
	jobFailed      = "failed"
	jobRejected    = "rejected"
	jobEnded       = "ended"       // the service ended it: canceled, timed out, removed
	jobInterrupted = "interrupted" // the manager stopped mid-job; resumed on restart
	jobUnreported  = "unreported"  // its outcome could not be written yet
)

// Results of a reconcile, the "result" label of shadowsync_reconciles_total.
const (
	resultSuccess  = "success"
	resultRequeue  = "requeue"
	resultError    = "error"
	resultTerminal = "terminal"
	resultInvalid  = "invalid_desired"
	resultConflict = "conflict"
	resultReport   = "report_failed"
)

// newMetrics makes the collectors; register adds them to a registry.
func newMetrics() *metrics {
	return &metrics{
		reconciles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shadowsync_reconciles_total",
			Help: "Reconciles run, by controller and result (success, requeue, error, terminal, invalid_desired, conflict, report_failed).",
		}, []string{"controller", "result"}),
		reconcileTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "shadowsync_reconcile_duration_seconds",
			Help:    "Time spent in Reconcile and the report that follows it.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
		}, []string{"controller"}),
		queueDepth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "shadowsync_queue_depth",
			Help: "Shadows waiting in a controller's work queue, ready to run.",
		}, []string{"controller"}),
		queueAdds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shadowsync_queue_adds_total",
			Help: "Shadows added to a controller's work queue (before de-duplication).",
		}, []string{"controller"}),
		queueRetries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shadowsync_queue_retries_total",
			Help: "Shadows put back in a controller's work queue with backoff after a failure.",
		}, []string{"controller"}),
		acksHeld: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "shadowsync_fleet_events_unacked",
			Help: "Fleet events held unacknowledged until their reconcile has run (Fleet.PersistentSession).",
		}, []string{"controller"}),
		acksEarly: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shadowsync_fleet_events_acked_early_total",
			Help: "Fleet events acknowledged before their reconcile because Fleet.MaxUnacked were already held.",
		}, []string{"controller"}),
		queueWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "shadowsync_queue_wait_seconds",
			Help:    "Time from a shadow needing a reconcile to its reconcile starting.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
		}, []string{"controller"}),
		shadowRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shadowsync_shadow_requests_total",
			Help: "Shadow requests, by pooled connection (0 is the primary), operation (get, update, delete) and outcome (accepted, rejected, timeout, offline, error).",
		}, []string{"conn", "operation", "outcome"}),
		shadowLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "shadowsync_shadow_request_duration_seconds",
			Help:    "Time from publishing a shadow request to its reply, by pooled connection and operation.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
		}, []string{"conn", "operation"}),
		versionsBack: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shadowsync_shadow_version_backwards_total",
			Help: "Shadows read at a lower version than the controller had seen: the service lost or restored its state (or recreated the shadow); the read was taken as the truth.",
		}, []string{"controller"}),
		jobsStarted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shadowsync_jobs_started_total",
			Help: "Job executions handed to a job handler, new or resumed after a restart.",
		}, []string{"controller"}),
		jobsFinished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shadowsync_jobs_finished_total",
			Help: "Job executions a job controller finished, by status (succeeded, failed, rejected, ended by the service, interrupted by a shutdown, unreported).",
		}, []string{"controller", "status"}),
		jobDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "shadowsync_job_handler_duration_seconds",
			Help:    "Time spent in a job handler.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 12),
		}, []string{"controller"}),
		jobRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shadowsync_job_requests_total",
			Help: "Jobs requests, by operation (get-pending, start-next, describe, update) and outcome (accepted, rejected, timeout, offline, error).",
		}, []string{"operation", "outcome"}),
		connected: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "shadowsync_connected",
			Help: "1 while the connection is online, 0 otherwise, by connection of the pool (conn: 0 is the primary).",
		}, []string{"conn"}),
		reconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shadowsync_reconnects_total",
			Help: "Times the connection came back online after being lost, by connection of the pool.",
		}, []string{"conn"}),
		invalidDesired: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shadowsync_invalid_desired_total",
			Help: "Desired states refused before Reconcile: not decodable into the device type, or outside its schema.",
		}, []string{"controller"}),
		droppedOnClosed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shadowsync_shutdown_dropped_total",
			Help: "Reconciles still queued or delayed when the manager shut down, or asked for (a retry, a requeue) once it had.",
		}),
	}
}

// register adds every collector to reg, or none of them; the connections' own
// counters are read from pool's connections at scrape time.
func (m *metrics) register(reg prometheus.Registerer, pool func() []*poolConn) error {
	var done []prometheus.Collector
	for _, c := range []prometheus.Collector{
		m.reconciles, m.reconcileTime, m.queueDepth, m.queueAdds, m.queueRetries, m.queueWait,
		m.shadowRequests, m.shadowLatency, m.connected, m.reconnects, m.invalidDesired, m.droppedOnClosed, m.versionsBack,
		m.acksHeld, m.acksEarly,
		m.jobsStarted, m.jobsFinished, m.jobDuration, m.jobRequests, connCollector{pool},
	} {
		if err := reg.Register(c); err != nil {
			for _, d := range done {
				reg.Unregister(d)
			}
			return err
		}
		done = append(done, c)
	}
	return nil
}

// The connections' own counters: publishes their rate cap delayed, and messages
// dropped for handlers that fell behind; one series per connection of the pool.
var (
	throttledDesc = prometheus.NewDesc("shadowsync_publishes_throttled_total",
		"Publishes the connection's MaxPublishRate delayed (AWS IoT's 100/s by default on AWS IoT endpoints), by connection of the pool.",
		[]string{"conn"}, nil)
	throttleWaitDesc = prometheus.NewDesc("shadowsync_publish_throttle_seconds_total",
		"Time publishes waited for the connection's MaxPublishRate, in all, by connection of the pool.",
		[]string{"conn"}, nil)
	droppedDesc = prometheus.NewDesc("shadowsync_messages_dropped_total",
		"Incoming messages dropped because a subscription's handler had a full buffer, by connection of the pool.",
		[]string{"conn"}, nil)
)

// connCollector reads the connections' counters at scrape time.
type connCollector struct{ pool func() []*poolConn }

func (c connCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- throttledDesc
	ch <- throttleWaitDesc
	ch <- droppedDesc
}

func (c connCollector) Collect(ch chan<- prometheus.Metric) {
	for _, pc := range c.pool() {
		n, waited := pc.conn.Throttled()
		ch <- prometheus.MustNewConstMetric(throttledDesc, prometheus.CounterValue, float64(n), pc.label)
		ch <- prometheus.MustNewConstMetric(throttleWaitDesc, prometheus.CounterValue, waited.Seconds(), pc.label)
		ch <- prometheus.MustNewConstMetric(droppedDesc, prometheus.CounterValue, float64(pc.conn.Dropped()), pc.label)
	}
}

// connRequests are the shadow request metrics of one pooled connection.
type connRequests struct {
	m    *metrics
	conn string
}

// requestsOn returns the shadow request metrics of the pooled connection labelled conn.
func (m *metrics) requestsOn(conn string) connRequests { return connRequests{m, conn} }

// observe is the Observe hook of the connection's shadow client.
func (r connRequests) observe(op shadowstate.Op, outcome string, took time.Duration) {
	m := r.m
	m.shadowRequests.WithLabelValues(r.conn, string(op), outcome).Inc()
	if outcome == shadowclient.OutcomeAccepted || outcome == shadowclient.OutcomeRejected {
		m.shadowLatency.WithLabelValues(r.conn, string(op)).Observe(took.Seconds())
	}
}

// observeJobRequest is the jobs client's Observe hook.
func (m *metrics) observeJobRequest(op jobstate.Op, outcome string, _ time.Duration) {
	m.jobRequests.WithLabelValues(string(op), outcome).Inc()
}

// serveMetrics serves the registry's metrics at /metrics on addr until closed.
func serveMetrics(addr string, g prometheus.Gatherer, log *slog.Logger) (stop func(), _ net.Addr, _ error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped; the manager goes on without /metrics", "addr", ln.Addr().String(), "error", err)
		}
	}()
	stop = func() {
		_ = srv.Close()
		<-done
	}
	return stop, ln.Addr(), nil
}
