package localiot

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Reason classes of a refused connection: the "reason" label of
// shadowsync_localiot_connections_refused_total and the "reason" of its log line.
const (
	// refusedTimeout: the TLS handshake or the WebSocket upgrade request was not
	// complete in time.
	refusedTimeout = "timeout"
	// refusedTLSHandshake: the TLS handshake failed for another reason (not TLS, no
	// common version or cipher suite, closed half-way).
	refusedTLSHandshake = "tls_handshake"
	// refusedClientCertificate: mutual TLS without a client certificate, or with one
	// that does not verify against the CA (unknown issuer, expired).
	refusedClientCertificate = "client_certificate"
	// refusedSigV4: the WebSocket upgrade's presigned URL did not verify (403).
	refusedSigV4 = "sigv4"
	// refusedBadRequest: not a WebSocket upgrade localiot serves (400, 404, 405, 426,
	// 431), or the connection closed before the request was complete.
	refusedBadRequest = "bad_request"
)

// Default rate limit of refusal log lines.
const (
	defaultRefusalBurst    = 10
	defaultRefusalInterval = 10 * time.Second
)

// metrics are a Server's Prometheus collectors.
type metrics struct {
	refused *prometheus.CounterVec // by listener and reason
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shadowsync_localiot_connections_refused_total",
			Help: "Connections refused before MQTT, by listener (tls, ws) and reason (timeout, tls_handshake, client_certificate, sigv4, bad_request).",
		}, []string{"listener", "reason"}),
	}
	err := reg.Register(m.refused)
	var dup prometheus.AlreadyRegisteredError
	if errors.As(err, &dup) {
		// Another server on the same registry: count together.
		if existing, ok := dup.ExistingCollector.(*prometheus.CounterVec); ok {
			m.refused, err = existing, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("localiot: register metrics: %w", err)
	}
	return m, nil
}

// refusalLog logs and counts refused connections. Every refusal is counted; at most
// burst lines are logged per interval, and at the end of an interval in which some
// were not, one line says how many. It is safe for concurrent use.
type refusalLog struct {
	log      *slog.Logger
	count    *prometheus.CounterVec
	burst    int
	interval time.Duration

	mu         sync.Mutex
	start      time.Time // of the current interval
	logged     int       // lines logged in the current interval
	suppressed int       // refusals not logged and not yet reported
	report     *time.Timer
	closed     bool
}

func newRefusalLog(log *slog.Logger, count *prometheus.CounterVec) *refusalLog {
	return &refusalLog{log: log, count: count, burst: defaultRefusalBurst, interval: defaultRefusalInterval}
}

// expect makes the counter of each reason exist, at zero, for listener.
func (r *refusalLog) expect(listener string, reasons ...string) {
	for _, reason := range reasons {
		r.count.WithLabelValues(listener, reason)
	}
}

// refused counts a refused connection and logs it, with attrs, unless the rate limit
// has been reached.
func (r *refusalLog) refused(listener, reason, remote string, err error, attrs ...any) {
	r.count.WithLabelValues(listener, reason).Inc()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	now := time.Now()
	if now.Sub(r.start) >= r.interval {
		r.start, r.logged = now, 0
	}
	if r.logged < r.burst {
		r.logged++
		r.log.Info("connection refused", append([]any{"listener", listener, "remote", remote, "reason", reason, "error", err}, attrs...)...)
		return
	}
	r.suppressed++
	if r.report == nil {
		r.report = time.AfterFunc(r.start.Add(r.interval).Sub(now), r.reportSuppressed)
	}
}

func (r *refusalLog) reportSuppressed() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.report = nil
	if !r.closed {
		r.logSuppressed()
	}
}

// logSuppressed logs how many refusals were not logged; r.mu is held.
func (r *refusalLog) logSuppressed() {
	if r.suppressed > 0 {
		r.log.Info("connections refused and not logged (rate limit)", "count", r.suppressed, "limit", fmt.Sprintf("%d lines per %v", r.burst, r.interval))
		r.suppressed = 0
	}
}

// close reports the refusals not yet reported; nothing is logged after it returns.
func (r *refusalLog) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	if r.report != nil {
		r.report.Stop()
		r.report = nil
	}
	r.logSuppressed()
}

// tlsRefusalReason classifies a failed server-side TLS handshake.
func tlsRefusalReason(err error) string {
	var ne net.Error
	var cve *tls.CertificateVerificationError
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return refusedTimeout
	case errors.As(err, &cve):
		return refusedClientCertificate
	case strings.Contains(err.Error(), "didn't provide a certificate"):
		// crypto/tls has no error value for it; this is its message.
		return refusedClientCertificate
	}
	return refusedTLSHandshake
}
