package transport

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/shadowsync/shadowsync/internal/awsiot"
	"github.com/shadowsync/shadowsync/internal/offlinequeue"
)

// Defaults, most of them the AWS IoT Device SDK for Python v1's (docs/seed-mapping.md)
// or AWS IoT's limits (docs/protocol.md#limits). Each is what the zero value of the
// Config field of the same name means.
const (
	// DefaultOperationTimeout bounds Publish, Subscribe and Unsubscribe.
	DefaultOperationTimeout = 5 * time.Second
	// DefaultConnectTimeout bounds one connect attempt and the DISCONNECT on Close.
	DefaultConnectTimeout = 30 * time.Second
	// DefaultKeepAlive is the Python SDK v1's MQTT keep-alive.
	DefaultKeepAlive = 600 * time.Second
	// DefaultBackoffBase and DefaultBackoffMax shape the reconnect backoff
	// min(2^n × base, max).
	DefaultBackoffBase = 1 * time.Second
	DefaultBackoffMax  = 32 * time.Second
	// DefaultStableAfter is how long a connection must last to reset the backoff.
	DefaultStableAfter = 20 * time.Second
	// DefaultOfflineQueueSize is the Python SDK v1 README's offline queue size.
	DefaultOfflineQueueSize = 20
	// DefaultDrainRate is how many queued publishes per second are sent after a reconnect.
	DefaultDrainRate = 2.0
	// DefaultMaxSubscriptions is AWS IoT's subscriptions-per-connection cap, the
	// default on AWS IoT endpoints.
	DefaultMaxSubscriptions = awsiot.MaxSubscriptionsPerConnection
	// DefaultMaxFiltersPerSubscribe is AWS IoT's topic-filters-per-SUBSCRIBE cap.
	DefaultMaxFiltersPerSubscribe = awsiot.MaxFiltersPerSubscribe
	// DefaultMaxPublishRate is AWS IoT's publishes per second per connection, the
	// default on AWS IoT endpoints.
	DefaultMaxPublishRate float64 = awsiot.MaxPublishesPerSecond
	// DefaultHandlerBuffer is how many messages may wait for one subscription's handler.
	DefaultHandlerBuffer = 1024
	// DefaultMaxConnectionAge replaces WebSocket connections ahead of AWS's 24 h cut.
	DefaultMaxConnectionAge = awsiot.MaxWebSocketConnectionAge - 30*time.Minute
)

// UnboundedOfflineQueue, as Config.OfflineQueueSize, lets the offline queue grow
// without a bound.
const UnboundedOfflineQueue = -1

// DropPolicy says which publish a full offline queue gives up (Config.OfflineDropPolicy).
type DropPolicy int

const (
	// DropNewest refuses the publish being made, with an error wrapping ErrQueueFull,
	// and keeps what is queued. It is the default because it never loses a publish
	// the caller was told is queued.
	DropNewest DropPolicy = iota
	// DropOldest evicts the oldest queued publish (logged at Warn) to make room for
	// the new one, which is always queued: the Python SDK v1's DROP_OLDEST.
	DropOldest
)

// String returns "DropNewest" or "DropOldest".
func (p DropPolicy) String() string {
	switch p {
	case DropNewest:
		return "DropNewest"
	case DropOldest:
		return "DropOldest"
	}
	return fmt.Sprintf("DropPolicy(%d)", int(p))
}

const (
	defaultClientIDPrefix    = "shadowsync-"
	maxClientIDBytes         = awsiot.MaxClientIDBytes
	maxKeepAlive             = 65535 * time.Second // MQTT's 16-bit seconds
	credentialsRefreshMargin = 2 * time.Minute
)

// Config configures a Conn. Its zero value connects to a plain MQTT broker on
// 127.0.0.1:1883 with the Python SDK v1's defaults; each field says what its zero means.
// A Config is read by New and not retained; changing it afterwards has no effect.
type Config struct {
	// Endpoint is the broker's URL:
	//   mqtts://host[:8883]   TLS 1.2+ with X.509 mutual auth (AWS IoT's data endpoint)
	//   mqtts://host:443      the same with ALPN x-amzn-mqtt-ca, for networks that only open 443
	//   wss://host[/mqtt]     MQTT over WebSocket, SigV4-presigned URL (port 443)
	//   mqtt://host[:1883]    plain TCP, for local brokers only
	//   ws://host:port/mqtt   WebSocket without TLS, SigV4, for local brokers only
	// Empty means mqtt://127.0.0.1:1883.
	Endpoint string

	// ClientID is the MQTT client ID, at most 128 bytes. AWS IoT allows one connection
	// per client ID and disconnects the older one, so empty means a generated ID
	// unique to this Conn ("shadowsync-" and 16 random hex digits).
	ClientID string
	// PersistentSession connects with MQTT's clean-session flag off (the Python SDK
	// v1's cleanSession=False): the server keeps the connection's subscriptions and
	// queues the QoS 1 messages that match them while the client is away (AWS IoT
	// for an hour by default), and sends those when the client comes back with the
	// same ClientID, which must therefore be set. When the server says it kept the
	// session (CONNACK's session-present flag), only what changed while offline is
	// subscribed or unsubscribed again; when it lost the session, every filter is.
	PersistentSession bool

	// TLS is the TLS configuration for mqtts and wss: roots, client certificate,
	// server name. It is cloned; nil means the system roots and no client
	// certificate, plus what CAFile, CertFile and KeyFile add. MinVersion is raised to
	// TLS 1.2 and ServerName defaults to the endpoint's host. The server certificate
	// and host name are always verified unless this config explicitly sets
	// InsecureSkipVerify.
	TLS *tls.Config
	// CAFile is a PEM file of root certificates (AWS's root CA) that replaces the
	// system roots. Empty keeps TLS.RootCAs or the system roots.
	CAFile string
	// CertFile and KeyFile are the client certificate and its private key in PEM,
	// for mqtts. Both or neither; empty keeps TLS.Certificates.
	CertFile, KeyFile string
	// ALPN lists the TLS application protocols to offer on mqtts. Nil means
	// x-amzn-mqtt-ca on port 443 (AWS requires it there) and none on other ports.
	ALPN []string

	// Region is the AWS region for SigV4 signing of wss URLs. Empty means the region
	// in an AWS IoT host name (xxx-ats.iot.<region>.amazonaws.com); New fails when
	// neither gives one.
	Region string
	// Credentials signs wss URLs and is asked on every connect attempt, so rotated
	// and expiring credentials keep working. Nil means the standard chain of
	// github.com/aws/aws-sdk-go-v2/config: environment variables, then the shared
	// credentials and config files for Profile (the EC2 instance metadata service is
	// not consulted).
	Credentials aws.CredentialsProvider
	// Profile is the shared-file profile for the standard chain. Empty means
	// AWS_PROFILE or "default".
	Profile string
	// MaxConnectionAge, for WebSocket endpoints, is how long a connection is kept
	// before a planned reconnect, ahead of AWS's 24-hour cut. Zero means 23 h 30 min;
	// negative means never.
	MaxConnectionAge time.Duration

	// Username is the MQTT user name; the SDK metrics string is appended unless
	// DisableMetrics is set. Empty means none.
	Username string
	// Password is the MQTT password. It never appears in logs or errors.
	Password Secret
	// DisableMetrics stops appending "?SDK=GoShadowsync&Version=<v>" to the user
	// name, the convention by which AWS IoT counts SDK usage. False (the default)
	// appends it.
	DisableMetrics bool
	// Will is the Last Will message the server publishes if the connection drops
	// without a DISCONNECT. Nil means none.
	Will *Will

	// KeepAlive is the MQTT keep-alive, in whole seconds. A connection that hears
	// nothing from the server for 1.5 × KeepAlive is declared lost. Zero means 600 s,
	// the Python SDK v1's default. AWS IoT accepts 30–1200 s and treats shorter values
	// as 30 s, but shorter values are allowed here (down to 1 s) for local brokers and
	// tests.
	KeepAlive time.Duration
	// ConnectTimeout bounds one connect attempt (dial, TLS, WebSocket upgrade,
	// CONNECT/CONNACK) and the DISCONNECT on Close. Zero means 30 s.
	ConnectTimeout time.Duration
	// OperationTimeout bounds every Publish, Subscribe and Unsubscribe on top of its
	// ctx. Zero means 5 s.
	OperationTimeout time.Duration

	// Backoff gives the wait before each reconnect attempt. Nil means
	// ExponentialBackoff(1 s, 32 s, 0): min(2^n × 1 s, 32 s), no jitter.
	Backoff Backoff
	// StableAfter is how long a connection must stay up for the backoff to start
	// again from attempt 0. Zero means 20 s.
	StableAfter time.Duration

	// OfflineQueueSize bounds the publishes queued while offline. Zero means 20;
	// UnboundedOfflineQueue (-1) means no bound. To turn queueing off (the Python SDK v1's
	// size 0) set DisableOfflineQueue.
	OfflineQueueSize int
	// DisableOfflineQueue makes Publish fail with ErrOffline while offline.
	DisableOfflineQueue bool
	// OfflineDropPolicy says what a full offline queue gives up. The zero value is
	// DropNewest: the new publish is refused with ErrQueueFull.
	OfflineDropPolicy DropPolicy
	// DrainRate is how many queued publishes per second are sent after a reconnect.
	// Zero means 2 Hz; math.Inf(1) means as fast as they are acknowledged.
	DrainRate float64

	// MaxSubscriptions caps the topic filters one connection holds. Zero means AWS
	// IoT's 50 on an AWS IoT endpoint (a host under amazonaws.com) and no cap on any
	// other, which enforces its own limits if it has any; negative means no cap.
	MaxSubscriptions int
	// MaxFiltersPerSubscribe caps the filters in one SUBSCRIBE (AWS IoT: 8). Zero
	// means 8.
	MaxFiltersPerSubscribe int
	// MaxPublishRate caps outgoing publishes per second, with bursts of 90 % of one
	// second's worth (the rest is a margin for the way to a broker that counts the
	// same cap, as AWS IoT does). Zero means AWS IoT's 100 per connection on an AWS IoT endpoint (a host
	// under amazonaws.com), where going faster gets publishes throttled, and no cap on
	// any other; negative means no cap. A publish the cap delays is counted
	// (Conn.Throttled) and logged at Debug.
	MaxPublishRate float64
	// HandlerBuffer is how many messages may wait for one subscription's handler
	// before further messages for it are dropped (and logged). Zero means 1024; the
	// Buffer option of Subscribe sets it per subscription.
	HandlerBuffer int

	// Dialer opens TCP connections; set it to go through a proxy (the Python SDK v1's
	// socket factory). Nil means a net.Dialer.
	Dialer ContextDialer

	// OnOnline is called each time the connection is up, resubscribed and drained.
	// OnOffline is called with the cause each time an online connection is lost.
	// Both run on one goroutine of their own, in order, never under transport's
	// locks; they may call any Conn method. Nil means no call.
	OnOnline  func()
	OnOffline func(err error)

	// Unhandled, when set, receives every message that no subscription's filter
	// matches: the Python SDK v1's onMessage. The server sends such messages when it
	// holds subscriptions this Conn does not (made by an earlier run of the program
	// on a session the server kept), and a message can arrive just after its filter
	// was unsubscribed. It runs on a goroutine of its own, one message at a time,
	// with HandlerBuffer messages waiting at most (further ones are dropped and
	// logged). Nil means such messages are dropped, with a Debug log line.
	Unhandled Handler

	// Logger receives transport's logs. Nil discards them.
	Logger *slog.Logger
}

// Will is an MQTT Last Will message.
type Will struct {
	Topic   string
	Payload []byte
	QoS     byte
	Retain  bool
}

// ContextDialer opens network connections; *net.Dialer and
// golang.org/x/net/proxy's dialers implement it.
type ContextDialer interface {
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
}

// LogValue logs the connection settings that matter for debugging and no secret.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("endpoint", c.Endpoint),
		slog.String("client_id", c.ClientID),
		slog.String("region", c.Region),
		slog.Bool("password_set", c.Password != ""),
		slog.Duration("keep_alive", c.KeepAlive),
	)
}

// settings is a validated Config with every default filled in.
type settings struct {
	Config
	ep        endpoint
	tls       *tls.Config // nil for mqtt:// and ws://
	username  string      // with the metrics string
	keepAlive time.Duration
	drainGap  time.Duration // between drained publishes; 0 means none
	pubGap    time.Duration // between outgoing publishes; 0 means no cap
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
}

// validate checks c and fills in defaults.
func (c Config) validate() (*settings, error) {
	s := &settings{Config: c}
	var err error
	if s.ep, err = parseEndpoint(c.Endpoint); err != nil {
		return nil, invalid("%v", err)
	}
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	if s.ClientID == "" && s.PersistentSession {
		return nil, invalid("PersistentSession needs a ClientID: the server finds the session by it, and a generated one differs in every run")
	}
	if s.ClientID == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		s.ClientID = defaultClientIDPrefix + hex.EncodeToString(b[:])
	}
	if len(s.ClientID) > maxClientIDBytes {
		return nil, invalid("ClientID is %d bytes, AWS IoT allows %d", len(s.ClientID), maxClientIDBytes)
	}
	durations := []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"KeepAlive", &s.KeepAlive, DefaultKeepAlive},
		{"ConnectTimeout", &s.ConnectTimeout, DefaultConnectTimeout},
		{"OperationTimeout", &s.OperationTimeout, DefaultOperationTimeout},
		{"StableAfter", &s.StableAfter, DefaultStableAfter},
	}
	for _, d := range durations {
		if *d.v < 0 {
			return nil, invalid("%s is negative (%v)", d.name, *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if s.KeepAlive%time.Second != 0 || s.KeepAlive > maxKeepAlive {
		return nil, invalid("KeepAlive %v: want whole seconds from 1s to %v", s.KeepAlive, maxKeepAlive)
	}
	s.keepAlive = s.KeepAlive
	if _, aws := regionFromHost(s.ep.host); aws && (s.keepAlive < awsiot.MinKeepAliveSeconds*time.Second || s.keepAlive > awsiot.MaxKeepAliveSeconds*time.Second) {
		s.Logger.Warn("AWS IoT accepts keep-alives of 30-1200 s and adjusts others", "keep_alive", s.keepAlive)
	}
	if s.MaxConnectionAge == 0 {
		s.MaxConnectionAge = DefaultMaxConnectionAge
	}
	if s.Backoff == nil {
		s.Backoff = ExponentialBackoff(DefaultBackoffBase, DefaultBackoffMax, 0)
	}

	switch {
	case s.OfflineQueueSize == 0:
		s.OfflineQueueSize = DefaultOfflineQueueSize
	case s.OfflineQueueSize < UnboundedOfflineQueue:
		return nil, invalid("OfflineQueueSize %d: want > 0, 0 (default 20) or -1 (unbounded)", s.OfflineQueueSize)
	}
	if s.DisableOfflineQueue {
		s.OfflineQueueSize = offlinequeue.Disabled
	}
	if s.OfflineDropPolicy != DropNewest && s.OfflineDropPolicy != DropOldest {
		return nil, invalid("OfflineDropPolicy %v is unknown", s.OfflineDropPolicy)
	}
	switch {
	case s.DrainRate < 0 || math.IsNaN(s.DrainRate):
		return nil, invalid("DrainRate %v: want > 0 Hz", s.DrainRate)
	case s.DrainRate == 0:
		s.DrainRate = DefaultDrainRate
	}
	if !math.IsInf(s.DrainRate, 1) {
		s.drainGap = time.Duration(float64(time.Second) / s.DrainRate)
	}
	switch {
	case math.IsNaN(s.MaxPublishRate):
		return nil, invalid("MaxPublishRate is NaN")
	case s.MaxPublishRate == 0 && awsIoTHost(s.ep.host):
		s.MaxPublishRate = DefaultMaxPublishRate
	case s.MaxPublishRate == 0:
		s.MaxPublishRate = -1
	}
	if s.MaxPublishRate > 0 && !math.IsInf(s.MaxPublishRate, 1) {
		s.pubGap = time.Duration(float64(time.Second) / s.MaxPublishRate)
	}
	if s.MaxSubscriptions == 0 && awsIoTHost(s.ep.host) {
		s.MaxSubscriptions = DefaultMaxSubscriptions
	}
	switch {
	case s.MaxFiltersPerSubscribe < 0:
		return nil, invalid("MaxFiltersPerSubscribe is negative")
	case s.MaxFiltersPerSubscribe == 0:
		s.MaxFiltersPerSubscribe = DefaultMaxFiltersPerSubscribe
	}
	switch {
	case s.HandlerBuffer < 0:
		return nil, invalid("HandlerBuffer is negative")
	case s.HandlerBuffer == 0:
		s.HandlerBuffer = DefaultHandlerBuffer
	}
	if s.Dialer == nil {
		s.Dialer = &net.Dialer{}
	}
	if w := s.Will; w != nil {
		if err := validTopic(w.Topic); err != nil {
			return nil, fmt.Errorf("%w: Will.Topic: %w", ErrInvalidConfig, err)
		}
		if err := validQoS(w.QoS); err != nil {
			return nil, fmt.Errorf("%w: Will.QoS: %w", ErrInvalidConfig, err)
		}
	}

	s.username = s.Username
	if !s.DisableMetrics {
		s.username = metricsUsername(s.Username)
	}

	if s.ep.websocket() && s.Region == "" {
		r, ok := regionFromHost(s.ep.host)
		if !ok {
			return nil, fmt.Errorf("%w: set Config.Region; host %q is not an AWS IoT endpoint name (xxx-ats.iot.<region>.amazonaws.com)", ErrNoRegion, s.ep.host)
		}
		s.Region = r
	}
	if s.ep.secure() {
		if s.tls, err = s.buildTLS(); err != nil {
			return nil, err
		}
	} else if !isLoopback(s.ep.host) {
		s.Logger.Warn("plain (unencrypted) endpoint on a non-loopback host", "endpoint", s.ep.String())
	}
	return s, nil
}

// buildTLS clones Config.TLS and adds the PEM files, TLS 1.2 minimum, server name
// and ALPN.
func (s *settings) buildTLS() (*tls.Config, error) {
	cfg := &tls.Config{}
	if s.TLS != nil {
		cfg = s.TLS.Clone()
	}
	if cfg.MinVersion < tls.VersionTLS12 {
		cfg.MinVersion = tls.VersionTLS12
	}
	if cfg.ServerName == "" {
		cfg.ServerName = s.ep.host
	}
	if s.CAFile != "" {
		pem, err := os.ReadFile(s.CAFile)
		if err != nil {
			return nil, invalid("CAFile: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, invalid("CAFile %s holds no PEM certificate", s.CAFile)
		}
		cfg.RootCAs = pool
	}
	if (s.CertFile == "") != (s.KeyFile == "") {
		return nil, invalid("CertFile and KeyFile go together")
	}
	if s.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(s.CertFile, s.KeyFile)
		if err != nil {
			return nil, invalid("CertFile/KeyFile: %v", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	switch {
	case s.ep.websocket():
		// AWS's WebSocket gateway negotiates nothing special.
	case s.ALPN != nil:
		cfg.NextProtos = append([]string(nil), s.ALPN...)
	case s.ep.port == "443":
		cfg.NextProtos = []string{alpnAWSMQTT}
	}
	for i := range cfg.Certificates {
		if cfg.Certificates[i].Leaf == nil && len(cfg.Certificates[i].Certificate) > 0 {
			leaf, err := x509.ParseCertificate(cfg.Certificates[i].Certificate[0])
			if err != nil {
				return nil, invalid("client certificate: %v", err)
			}
			cfg.Certificates[i].Leaf = leaf
		}
	}
	return cfg, nil
}

// Version is shadowsync's version as reported in the SDK metrics user name.
const Version = "0.1.0"

// metricsUsername appends AWS IoT's SDK metrics query to a user name: "?" when the
// name has no query yet, else "&" (docs/protocol.md#connecting-to-aws-iot).
func metricsUsername(user string) string {
	sep := "?"
	if strings.Contains(user, "?") {
		sep = "&"
	}
	return user + sep + "SDK=GoShadowsync&Version=" + Version
}
