package localiot

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// logRecorder is a slog.Handler that keeps every record at Info and above, the level
// `shadowsync serve` logs at by default.
type logRecorder struct {
	attrs []slog.Attr
	store *recordStore
}

type recordStore struct {
	mu      sync.Mutex
	records []loggedRecord
}

// loggedRecord is a log record's message and attributes, as text.
type loggedRecord struct {
	msg   string
	attrs map[string]string
}

func newLogRecorder() *logRecorder { return &logRecorder{store: &recordStore{}} }

func (h *logRecorder) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	rec := loggedRecord{msg: r.Message, attrs: map[string]string{}}
	for _, a := range h.attrs {
		rec.attrs[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		rec.attrs[a.Key] = a.Value.String()
		return true
	})
	h.store.mu.Lock()
	h.store.records = append(h.store.records, rec)
	h.store.mu.Unlock()
	return nil
}

func (h *logRecorder) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &logRecorder{attrs: append(append([]slog.Attr(nil), h.attrs...), attrs...), store: h.store}
}

func (h *logRecorder) WithGroup(string) slog.Handler { return h }

// with returns the records logged so far with message msg.
func (h *logRecorder) with(msg string) []loggedRecord {
	h.store.mu.Lock()
	defer h.store.mu.Unlock()
	var out []loggedRecord
	for _, r := range h.store.records {
		if r.msg == msg {
			out = append(out, r)
		}
	}
	return out
}

// waitFor polls until done holds, failing the test with what after within.
func waitFor(t *testing.T, within time.Duration, what string, done func() bool) {
	t.Helper()
	if !poll(within, done) {
		t.Fatalf("%s: not within %v", what, within)
	}
}

// refusedCount returns shadowsync_localiot_connections_refused_total for listener and reason as
// reg serves it, and whether the series exists.
func refusedCount(t *testing.T, reg *prometheus.Registry, listener, reason string) (float64, bool) {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "shadowsync_localiot_connections_refused_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["listener"] == listener && labels["reason"] == reason {
				return m.GetCounter().GetValue(), true
			}
		}
	}
	return 0, false
}

// Every connection refused before MQTT — a failed TLS handshake on the mutual-TLS
// listener or the WebSocket listener, a SigV4 refusal, a bad upgrade request, an
// upgrade not finished in time — is logged at Info with the client's address and the
// reason, and counted by listener and reason.
func TestRefusedConnectionsLoggedAndCounted(t *testing.T) {
	certs, err := EnsureCerts("", "thing-a")
	if err != nil {
		t.Fatal(err)
	}
	rec := newLogRecorder()
	s := startServer(t, Options{
		TLS:       certs.TLSListener(""),
		WebSocket: &WebSocketListener{Certificate: &certs.Server, Credentials: []Credential{wsThing}, UpgradeTimeout: 300 * time.Millisecond},
		Logger:    slog.New(rec),
	})
	tlsAddr := strings.TrimPrefix(s.Endpoints().TLS, "mqtts://")
	ws := wsTarget{url: s.Endpoints().WebSocket, addr: strings.TrimSuffix(strings.TrimPrefix(s.Endpoints().WebSocket, "wss://"), websocketPath),
		tlsConf: &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: certs.Pool, ServerName: "127.0.0.1"}}

	now := time.Now()
	other, err := newAuthority("other CA", now.Add(-time.Hour), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := other.issue("thing-a", false, now.Add(-time.Hour), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	// mutualTLS runs a TLS handshake with the mutual-TLS listener presenting certs,
	// reads until the server ends it, and returns the client's address.
	mutualTLS := func(t *testing.T, certs ...tls.Certificate) string {
		t.Helper()
		conn := (wsTarget{addr: tlsAddr}).dialTCP(t)
		tc := tls.Client(conn, &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: ws.tlsConf.RootCAs, ServerName: "127.0.0.1", Certificates: certs})
		_ = tc.SetDeadline(time.Now().Add(wait))
		// With TLS 1.3 the client's side of the handshake may succeed; the server's
		// refusal arrives on the first read.
		if err := tc.Handshake(); err == nil {
			if _, err := tc.Read(make([]byte, 1)); err == nil {
				t.Fatal("the server accepted the handshake")
			}
		}
		return conn.LocalAddr().String()
	}
	// notTLS sends plain HTTP to addr and waits for the server to close.
	notTLS := func(t *testing.T, addr string) string {
		t.Helper()
		conn := (wsTarget{addr: addr}).dialTCP(t)
		_, _ = io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		waitClosed(t, conn, conn, wait)
		return conn.LocalAddr().String()
	}
	// upgrade sends an upgrade request over wss and checks the status answered.
	upgrade := func(t *testing.T, request string, status int) string {
		t.Helper()
		conn := ws.dial(t)
		_ = conn.SetDeadline(time.Now().Add(wait))
		_, _ = io.WriteString(conn, request)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil || resp.StatusCode != status {
			t.Fatalf("response %v (%v), want status %d", resp, err, status)
		}
		return conn.LocalAddr().String()
	}
	good := presign(t, ws.url, wsThing.AccessKeyID, wsThing.SecretAccessKey, "", now, 0)

	type refusal struct{ listener, reason, remote string }
	want := []refusal{
		{listenerTLS, refusedClientCertificate, mutualTLS(t)},
		{listenerTLS, refusedClientCertificate, mutualTLS(t, foreign)},
		{listenerTLS, refusedTLSHandshake, notTLS(t, tlsAddr)},
		{listenerWS, refusedTLSHandshake, notTLS(t, ws.addr)},
		{listenerWS, refusedSigV4, upgrade(t, upgradeRequest(t, flipSignature(good), wsHeaders...), http.StatusForbidden)},
		{listenerWS, refusedBadRequest, upgrade(t, upgradeRequest(t, good, wsHeaders[:3]...), http.StatusBadRequest)},
	}
	idle := ws.dialTCP(t)
	waitClosed(t, idle, idle, wait)
	want = append(want, refusal{listenerWS, refusedTimeout, idle.LocalAddr().String()})

	waitFor(t, wait, "a log line per refusal", func() bool { return len(rec.with("connection refused")) >= len(want) })
	lines := rec.with("connection refused")
	if len(lines) != len(want) {
		t.Errorf("%d refusals logged, want %d: %v", len(lines), len(want), lines)
	}
	counts := map[refusal]float64{}
	for _, w := range want {
		found := false
		for _, l := range lines {
			if l.attrs["remote"] == w.remote {
				found = true
				if l.attrs["listener"] != w.listener || l.attrs["reason"] != w.reason || l.attrs["error"] == "" {
					t.Errorf("refusal of %s logged as %v, want listener %s, reason %s and an error", w.remote, l.attrs, w.listener, w.reason)
				}
			}
		}
		if !found {
			t.Errorf("refusal (%s, %s) of %s not logged; logged: %v", w.listener, w.reason, w.remote, lines)
		}
		counts[refusal{listener: w.listener, reason: w.reason}]++
	}
	for _, listener := range []string{listenerTLS, listenerWS} {
		for _, reason := range []string{refusedTimeout, refusedTLSHandshake, refusedClientCertificate, refusedSigV4, refusedBadRequest} {
			got, ok := refusedCount(t, s.Registry(), listener, reason)
			wantCount := counts[refusal{listener: listener, reason: reason}]
			wantSeries := wantCount > 0 || listener == listenerTLS && reason != refusedSigV4 && reason != refusedBadRequest ||
				listener == listenerWS && reason != refusedClientCertificate
			if got != wantCount || ok != wantSeries {
				t.Errorf("shadowsync_localiot_connections_refused_total{listener=%q,reason=%q} = %v (present %v), want %v (present %v)", listener, reason, got, ok, wantCount, wantSeries)
			}
		}
	}
}

// A flood of refusals logs at most the limit's lines per interval, then one line
// saying how many were not logged; every refusal is counted.
func TestRefusalLogIsRateLimited(t *testing.T) {
	const flood, burst, interval = 25, 3, time.Second
	rec := newLogRecorder()
	s, err := New(Options{WebSocket: &WebSocketListener{Credentials: []Credential{wsThing}}, Logger: slog.New(rec)})
	if err != nil {
		t.Fatal(err)
	}
	s.refusals.burst, s.refusals.interval = burst, interval
	runServer(t, s)
	target := wsTarget{url: s.Endpoints().WebSocket, addr: strings.TrimSuffix(strings.TrimPrefix(s.Endpoints().WebSocket, "ws://"), websocketPath)}
	bad := upgradeRequest(t, flipSignature(presign(t, target.url, wsThing.AccessKeyID, wsThing.SecretAccessKey, "", time.Now(), 0)), wsHeaders...)

	start := time.Now()
	for range flood {
		conn := target.dial(t)
		_ = conn.SetDeadline(time.Now().Add(wait))
		_, _ = io.WriteString(conn, bad)
		if resp, err := http.ReadResponse(bufio.NewReader(conn), nil); err != nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("response %v (%v), want 403", resp, err)
		}
		conn.Close()
	}
	took := time.Since(start)
	intervals := int(took/interval) + 1 // the flood spans at most this many

	summarized := func() int {
		n := 0
		for _, l := range rec.with("connections refused and not logged (rate limit)") {
			var c int
			_, _ = fmt.Sscan(l.attrs["count"], &c)
			n += c
		}
		return n
	}
	waitFor(t, interval+wait, "every refusal logged or summarized", func() bool {
		return len(rec.with("connection refused"))+summarized() == flood
	})
	logged := len(rec.with("connection refused"))
	if logged > burst*intervals {
		t.Errorf("%d refusals logged one by one over %v, want at most %d per %v", logged, took, burst, interval)
	}
	t.Logf("flood of %d in %v: %d lines, %d summarized", flood, took.Round(time.Millisecond), logged, summarized())
	if got, _ := refusedCount(t, s.Registry(), listenerWS, refusedSigV4); got != flood {
		t.Errorf("shadowsync_localiot_connections_refused_total{listener=ws,reason=sigv4} = %v, want %d", got, flood)
	}
}
