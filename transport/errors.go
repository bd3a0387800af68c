package transport

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/shadowsync/shadowsync/internal/offlinequeue"
)

// Errors returned by transport, wrapped with context; match them with errors.Is.
var (
	// ErrInvalidConfig is returned by New for a Config it cannot run with; the
	// wrapping error names the field.
	ErrInvalidConfig = errors.New("transport: invalid config")
	// ErrClosed is returned by calls on a Conn after Close.
	ErrClosed = errors.New("transport: connection closed")
	// ErrStarted is returned by Start when the Conn has been started before.
	ErrStarted = errors.New("transport: already started")
	// ErrOffline is returned by Publish while offline when offline queueing is
	// disabled.
	ErrOffline = errors.New("transport: offline")
	// ErrQueueFull is returned by Publish while offline when the offline queue is
	// full and its policy is DropNewest; the wrapping error says how full it is.
	ErrQueueFull = offlinequeue.ErrFull
	// ErrQoS2 refuses QoS 2: AWS IoT supports QoS 0 and 1 only and never acknowledges
	// a QoS 2 publish or subscription.
	ErrQoS2 = errors.New("transport: QoS 2 is not supported by AWS IoT (use QoS 0 or 1)")
	// ErrInvalidTopic is returned for a topic or topic filter that MQTT does not allow.
	ErrInvalidTopic = errors.New("transport: invalid topic")
	// ErrTooManySubscriptions is returned by Subscribe when the connection already
	// holds Config.MaxSubscriptions topic filters (AWS IoT's cap is about 50).
	ErrTooManySubscriptions = errors.New("transport: subscription limit reached")
	// ErrSubscribeRefused is returned when the server answers a SUBSCRIBE with the
	// failure code, e.g. for a filter the policy does not allow.
	ErrSubscribeRefused = errors.New("transport: subscription refused by the server")
	// ErrTimeout is returned when an operation is not acknowledged within
	// Config.OperationTimeout (or a connect within Config.ConnectTimeout).
	ErrTimeout = errors.New("transport: timed out")

	// ErrNoCredentials is returned when a WebSocket connection needs AWS credentials
	// and none were found; the wrapping error says where transport looked.
	ErrNoCredentials = errors.New("transport: no AWS credentials found")
	// ErrNoRegion is returned by New for a WebSocket endpoint whose region is neither
	// configured nor readable from the host name.
	ErrNoRegion = errors.New("transport: no AWS region")
	// ErrServerCertificate is returned when the server's certificate does not verify:
	// unknown authority, wrong host name, expired.
	ErrServerCertificate = errors.New("transport: server certificate not trusted")
	// ErrClientCertificate is returned when the client certificate cannot be used:
	// it has expired, or the server refused it during the TLS handshake.
	ErrClientCertificate = errors.New("transport: client certificate refused")
	// ErrNotAuthorized is returned when the server refuses the connection's identity:
	// CONNACK "not authorized" or "bad user name or password", or a WebSocket upgrade
	// answered 401/403.
	ErrNotAuthorized = errors.New("transport: not authorized")
	// ErrClientIDRejected is returned when the server refuses the client ID.
	ErrClientIDRejected = errors.New("transport: client ID rejected")
	// ErrClosedByServer reports a connection the server closed. AWS IoT does this when
	// another connection uses the same client ID (the older one is dropped) and when
	// a client breaks its policy or a limit.
	ErrClosedByServer = errors.New("transport: connection closed by the server")
	// ErrPlannedReconnect is the cause OnOffline receives when transport replaces a
	// healthy connection on purpose: before the credentials that signed a WebSocket
	// URL expire, or before AWS IoT's 24-hour WebSocket limit. The new connection
	// follows at once, without backoff.
	ErrPlannedReconnect = errors.New("transport: planned reconnect")
	// ErrKeepAlive reports a connection declared dead because nothing arrived from
	// the server for 1.5 × the keep-alive interval (its PINGRESP was lost).
	ErrKeepAlive = errors.New("transport: keep-alive timeout")
)

// permanent reports whether err is one that retrying with the same settings cannot
// fix. Dial gives up on such an error at the first attempt; a running Conn keeps
// retrying with backoff, since certificates, policies and credentials can be fixed
// while it waits.
func permanent(err error) bool {
	for _, p := range []error{ErrServerCertificate, ErrClientCertificate, ErrNotAuthorized, ErrClientIDRejected, ErrNoCredentials} {
		if errors.Is(err, p) {
			return true
		}
	}
	return false
}

// Secret is a string that never shows itself in logs, fmt output or errors; use it
// for passwords and tokens.
type Secret string

// String returns "[redacted]" for a non-empty secret and "" otherwise.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// GoString is like String, for %#v.
func (s Secret) GoString() string { return fmt.Sprintf("%q", s.String()) }

// LogValue logs the secret redacted.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }
