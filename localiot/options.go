package localiot

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"strings"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shadowsync/shadowsync/internal/awsiot"
	"github.com/shadowsync/shadowsync/shadowstate"
)

// ErrInvalidOptions is returned (wrapped, saying which field) by New for Options it
// cannot run with, and by EnsureCertsWith for CertOptions it cannot issue.
var ErrInvalidOptions = errors.New("localiot: invalid options")

// Options configures a Server. The zero value serves plain MQTT on an ephemeral
// loopback port, with AWS IoT's broker limits on and logs discarded.
type Options struct {
	// Plain is the plain TCP listener, meant for local development only. Nil means no
	// plain listener, unless TLS, WebSocket and HTTPS are nil too, in which case a plain
	// listener on 127.0.0.1:0 is served.
	Plain *PlainListener
	// TLS is the mutual-TLS listener (AWS IoT's ports 8883 and 443). Nil means none.
	TLS *TLSListener
	// WebSocket is the MQTT-over-WebSocket listener with SigV4 presigned URLs. Nil
	// means none.
	WebSocket *WebSocketListener
	// Discovery is the Greengrass discovery API (AWS's HTTPS port 8443), answering
	// with this server as the one core of one group. Nil means none.
	Discovery *DiscoveryListener
	// HTTPS is AWS IoT's HTTPS data plane: the Device Shadow REST API and HTTP Publish,
	// for apps written with an AWS SDK's iotdataplane client. Nil means none.
	HTTPS *HTTPSListener
	// Console is the web console: things, shadows and clients, live, with an editor of
	// desired state. Nil means none.
	Console *ConsoleListener

	// ThingTopics lists the topic filters, besides its own shadow topics, that a
	// client acting as a thing may publish to, subscribe to and receive from. "${thing}"
	// in a filter stands for the client's thing name, e.g. "devices/${thing}/#". A
	// thing may subscribe to a filter only when every topic it matches is inside one of
	// these filters. Reserved ("$"-prefixed) filters are not allowed here. Nil means a
	// thing may use its shadow topics only.
	ThingTopics []string

	// Limits are AWS IoT's message broker limits. The zero value enforces AWS's values.
	Limits Limits

	// SessionExpiry is how long the broker keeps the session of a client that
	// connected with clean-session off after it disconnects: its subscriptions, and
	// the QoS 1 messages matching them (up to 8192 per session; beyond that they are
	// dropped and logged), delivered when it reconnects with the same client ID.
	// Zero means one hour, AWS IoT's default persistent-session expiry.
	SessionExpiry time.Duration

	// Outbound bounds what the server holds for each client that reads more slowly than
	// messages arrive for it; a client that lets its queue fill up is disconnected.
	// The zero value applies the defaults. Limits.Off does not lift these bounds.
	Outbound OutboundLimits

	// Observe, when set, is called with every connect, disconnect, SUBSCRIBE and
	// UNSUBSCRIBE of a client, on the client's own goroutine; it must return quickly.
	// Nil means no call.
	Observe func(Event)

	// Store keeps the Device Shadow service's shadows. Nil means a new MemoryStore, so
	// shadows last as long as the server; an OpenBoltStore keeps them across restarts.
	Store Store

	// Clock is the Jobs service's time source, for its timestamps and the step and
	// in-progress timeouts. Nil means the system clock.
	Clock Clock

	// Logger receives the server's logs; the embedded broker's own logs arrive at Warn
	// and above only. Nil discards them.
	Logger *slog.Logger

	// Registry receives the server's Prometheus metrics (docs/metrics.md); servers
	// given the same registry count together. Nil means a new registry, which
	// Server.Registry returns.
	Registry *prometheus.Registry
}

// PlainListener configures the plain TCP listener. It has no authentication: anyone
// who can reach it connects with operator rights (or as any thing, with
// ThingFromClientID), so it binds loopback addresses only unless InsecureAnyAddress is
// set.
type PlainListener struct {
	// Addr is the host:port to listen on: a loopback IP address or "localhost", unless
	// InsecureAnyAddress is set. "" means 127.0.0.1:0 (an ephemeral port).
	Addr string
	// InsecureAnyAddress allows an Addr that is not loopback (such as ":1883" or
	// "0.0.0.0:1883"), which gives everyone who can reach it operator rights with no
	// authentication; the server then logs a warning when it starts. Meant for
	// isolated networks, such as a CI job's own containers.
	InsecureAnyAddress bool
	// ThingFromClientID makes each plain client act as the thing named by its MQTT
	// client ID (the part before "@" in a client ID of the form NAME@SUFFIX),
	// restricted like a thing's certificate; a client ID whose name is not a valid
	// thing name is refused. False (the default) gives plain clients operator rights.
	ThingFromClientID bool
}

// TLSListener configures the mutual-TLS listener: TLS 1.2 or later, a client
// certificate signed by ClientCAs required, ALPN "x-amzn-mqtt-ca" offered so clients
// that connect as to AWS's port 443 work. A client whose certificate is one of
// Operators has operator rights; any other acts as the thing named by the
// certificate's subject CN. CertSet.TLSListener builds one from generated certificates.
type TLSListener struct {
	// Addr is the host:port to listen on. "" means 127.0.0.1:0.
	Addr string
	// Certificate is the server's certificate and key. Required.
	Certificate tls.Certificate
	// ClientCAs verifies client certificates. Required.
	ClientCAs *x509.CertPool
	// Operators are the client certificates with operator rights, matched exactly;
	// they are operators on WebSocketListener.MQTTOverALPN's port too. Nil means
	// every client is a thing.
	Operators []*x509.Certificate
}

// WebSocketListener configures MQTT over WebSocket at path /mqtt. The HTTP upgrade
// must carry a SigV4 presigned query (AWS4-HMAC-SHA256, service iotdevicegateway —
// or iotdata, the name older SDKs use) signed with one of Credentials; anything else
// is refused with 403 before any MQTT traffic. Sub-protocols "mqtt" and "mqttv3.1"
// are accepted, and any non-empty base64 Sec-WebSocket-Key (AWS IoT accepts the
// 128-byte keys of the AWS IoT Device SDK for Python v1). A refused upgrade is
// answered and its connection closed at once; refusals are logged and counted
// (shadowsync_localiot_connections_refused_total).
type WebSocketListener struct {
	// Addr is the host:port to listen on. "" means 127.0.0.1:0.
	Addr string
	// Certificate, if set, serves wss:// with this certificate (no client
	// certificate is asked for). Nil serves plain ws://.
	Certificate *tls.Certificate
	// Credentials are the access keys that may connect. At least one is required.
	Credentials []Credential
	// Region, if set, is the only region accepted in a signature's scope. "" accepts any.
	Region string
	// MaxSkew is how far X-Amz-Date may be from the server's clock, on top of
	// X-Amz-Expires when present. Zero means 5 minutes, AWS's window.
	MaxSkew time.Duration
	// UpgradeTimeout bounds the time from accepting a connection to answering its
	// upgrade request: the TLS handshake, reading the request and writing the
	// response. A connection that has not finished by then is closed. Zero means 10
	// seconds.
	UpgradeTimeout time.Duration
	// MQTTOverALPN, if set, also serves MQTT over TLS on this port, as AWS IoT does on
	// port 443: the protocol the client offers in the TLS handshake's ALPN extension
	// picks the handler. A client offering "x-amzn-mqtt-ca" speaks MQTT and must
	// present a certificate that MQTTOverALPN.ClientCAs verifies; it acts as it would
	// on the mutual-TLS listener (operator, or the thing named by its certificate's
	// subject CN). Any other client (ALPN "http/1.1", or no ALPN) gets the WebSocket
	// upgrade and is asked for no certificate. Requires Certificate. Nil serves
	// WebSocket only.
	MQTTOverALPN *ClientCertAuth
}

// ClientCertAuth is how a listener verifies client certificates and which of them have
// operator rights. The operators of every listener are operators on all of them.
type ClientCertAuth struct {
	// ClientCAs verifies client certificates. Required.
	ClientCAs *x509.CertPool
	// Operators are the client certificates with operator rights, matched exactly.
	// Nil means every client is a thing.
	Operators []*x509.Certificate
}

// Credential is an AWS access key accepted by the WebSocket listener. Its LogValue
// never shows the secret or the session token.
type Credential struct {
	// AccessKeyID identifies the key. Required and unique among Credentials.
	AccessKeyID string
	// SecretAccessKey verifies signatures. Required.
	SecretAccessKey string
	// SessionToken, if set, must arrive as X-Amz-Security-Token; "" means the key is
	// a long-term key and a URL carrying a token is refused.
	SessionToken string
	// Thing, if set, makes connections with this key act as that thing; "" gives
	// them operator rights.
	Thing string
}

// LogValue shows the access key ID and thing, redacting the secrets.
func (c Credential) LogValue() slog.Value {
	return slog.GroupValue(slog.String("access_key_id", c.AccessKeyID), slog.String("thing", c.Thing))
}

// Limits are AWS IoT Core's message broker limits (docs/protocol.md#limits). The zero
// value enforces them all with AWS's values, except the publish throttle, which is off.
type Limits struct {
	// Off disables every limit below and the client ID, topic, QoS and keep-alive
	// rules: a plain MQTT broker.
	Off bool
	// MaxPayload is the largest PUBLISH payload in bytes; a larger one closes the
	// connection. Zero means 128 KiB; negative means no limit.
	MaxPayload int
	// MaxSubscriptions is how many subscriptions one connection may hold; filters
	// beyond it get the SUBACK failure code. Zero means 50; negative means no limit.
	MaxSubscriptions int
	// MaxFiltersPerSubscribe is how many filters one SUBSCRIBE may carry; the rest get
	// the SUBACK failure code. Zero means 8; negative means no limit.
	MaxFiltersPerSubscribe int
	// MaxPublishRate, when positive, throttles each connection's inbound publishes
	// to this many per second, with bursts of as many; excess ones are dropped
	// (AWS IoT: 100). Zero means no throttle.
	MaxPublishRate float64
}

// OutboundLimits bound each client's outbound queue, so that a client that reads
// slowly, or not at all, neither delays other clients nor holds the server's memory.
// The server never waits for a client's socket: what it sends a client goes into the
// broker's queue of messages for it, is encoded into the connection's queue of bytes,
// and a goroutine of the connection's own writes those to the socket. A client whose
// queue would grow past either bound is disconnected at once: its socket closed, its
// queue dropped, its Last Will published (a persistent session keeps its QoS 1
// messages not yet acknowledged), logged once at Warn and counted in the metric
// shadowsync_localiot_slow_clients_disconnected_total.
//
// What the broker resends when a persistent session resumes is exempt: it is the
// client's own backlog, sent all at once. A burst the client cannot take as fast as
// the server produces it, such as many large retained messages matched by one
// SUBSCRIBE, counts like any other traffic; raise Bytes for such clients.
type OutboundLimits struct {
	// Messages is how many messages may wait for the broker to encode them for the
	// client. The connection takes them at memory speed, so this queue fills only when
	// the server falls behind the messages' producers. Zero means 8192.
	Messages int
	// Bytes is how many encoded bytes may wait for the client's socket to take them.
	// Zero means 4 MiB. A single message larger than Bytes is still queued when nothing
	// else waits.
	Bytes int
}

// Default outbound queue bounds, per client.
const (
	defaultOutboundMessages = 8192
	defaultOutboundBytes    = 4 << 20
)

// AWS IoT Core broker limits (package awsiot has the quotas) and localiot's own
// settings.
const (
	defaultMaxPayload        = awsiot.MaxPayloadBytes
	defaultMaxSubscriptions  = awsiot.MaxSubscriptionsPerConnection
	defaultMaxFilters        = awsiot.MaxFiltersPerSubscribe
	maxClientIDBytes         = awsiot.MaxClientIDBytes
	maxTopicBytes            = awsiot.MaxTopicBytes
	maxTopicSlashes          = awsiot.MaxTopicSlashes
	minKeepAlive             = awsiot.MinKeepAliveSeconds
	maxKeepAlive             = awsiot.MaxKeepAliveSeconds
	defaultMaxSkew           = 5 * time.Minute
	maxPresignExpiry         = 7 * 24 * time.Hour
	connectTimeout           = 10 * time.Second
	defaultUpgradeTimeout    = 10 * time.Second
	packetHeadroom           = 64 * 1024 // topic, header and properties on top of a payload
	defaultListenAddr        = "127.0.0.1:0"
	defaultSessionExpiry     = time.Hour
	websocketPath            = "/mqtt"
	alpnAmazonMQTT           = "x-amzn-mqtt-ca"
	alpnAmazonHTTP           = "x-amzn-http-ca"
	serviceIoTDataDeprecated = "iotdata"
)

// validate checks o and returns a copy with defaults filled in.
func (o Options) validate() (Options, error) {
	if o.Plain == nil && o.TLS == nil && o.WebSocket == nil && o.HTTPS == nil {
		o.Plain = &PlainListener{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Store == nil {
		o.Store = &MemoryStore{}
	}
	switch {
	case o.SessionExpiry == 0:
		o.SessionExpiry = defaultSessionExpiry
	case o.SessionExpiry < time.Second:
		return o, fmt.Errorf("%w: SessionExpiry %v: want at least 1s, or 0 for the default (1h)", ErrInvalidOptions, o.SessionExpiry)
	}
	if p := o.Plain; p != nil && !p.InsecureAnyAddress && !isLoopbackAddr(addrOrDefault(p.Addr)) {
		return o, fmt.Errorf("%w: Plain.Addr %q is not a loopback address: the plain listener has no authentication and gives operator rights; set Plain.InsecureAnyAddress to serve it there anyway", ErrInvalidOptions, p.Addr)
	}
	if o.TLS != nil {
		if len(o.TLS.Certificate.Certificate) == 0 || o.TLS.Certificate.PrivateKey == nil {
			return o, fmt.Errorf("%w: TLS.Certificate is required", ErrInvalidOptions)
		}
		if o.TLS.ClientCAs == nil {
			return o, fmt.Errorf("%w: TLS.ClientCAs is required", ErrInvalidOptions)
		}
	}
	if ws := o.WebSocket; ws != nil {
		if ws.Certificate != nil && (len(ws.Certificate.Certificate) == 0 || ws.Certificate.PrivateKey == nil) {
			return o, fmt.Errorf("%w: WebSocket.Certificate has no certificate or key", ErrInvalidOptions)
		}
		if len(ws.Credentials) == 0 {
			return o, fmt.Errorf("%w: WebSocket.Credentials is empty", ErrInvalidOptions)
		}
		if ws.MaxSkew < 0 {
			return o, fmt.Errorf("%w: WebSocket.MaxSkew is negative", ErrInvalidOptions)
		}
		if ws.UpgradeTimeout < 0 {
			return o, fmt.Errorf("%w: WebSocket.UpgradeTimeout is negative", ErrInvalidOptions)
		}
		if ws.MQTTOverALPN != nil {
			if ws.Certificate == nil {
				return o, fmt.Errorf("%w: WebSocket.MQTTOverALPN needs WebSocket.Certificate (ALPN is part of TLS)", ErrInvalidOptions)
			}
			if ws.MQTTOverALPN.ClientCAs == nil {
				return o, fmt.Errorf("%w: WebSocket.MQTTOverALPN.ClientCAs is required", ErrInvalidOptions)
			}
		}
		seen := make(map[string]bool, len(ws.Credentials))
		for i, c := range ws.Credentials {
			if c.AccessKeyID == "" || c.SecretAccessKey == "" {
				return o, fmt.Errorf("%w: WebSocket.Credentials[%d] needs an access key ID and a secret", ErrInvalidOptions, i)
			}
			if seen[c.AccessKeyID] {
				return o, fmt.Errorf("%w: WebSocket.Credentials[%d]: access key ID %s given twice", ErrInvalidOptions, i, c.AccessKeyID)
			}
			seen[c.AccessKeyID] = true
			if c.Thing != "" {
				if err := (shadowstate.ID{Thing: c.Thing}).Validate(); err != nil {
					return o, fmt.Errorf("%w: WebSocket.Credentials[%d]: %w", ErrInvalidOptions, i, err)
				}
			}
		}
	}
	if o.Discovery != nil {
		if err := o.Discovery.validate(&o); err != nil {
			return o, err
		}
	}
	if err := o.HTTPS.validate(); err != nil {
		return o, err
	}
	if err := o.Console.validate(); err != nil {
		return o, err
	}
	for _, f := range o.ThingTopics {
		if strings.HasPrefix(f, "$") {
			return o, fmt.Errorf("%w: ThingTopics: %q is a reserved topic", ErrInvalidOptions, f)
		}
		if !mqtt.IsValidFilter(strings.ReplaceAll(f, thingPlaceholder, "x"), false) {
			return o, fmt.Errorf("%w: ThingTopics: %q is not a valid topic filter", ErrInvalidOptions, f)
		}
	}
	l := &o.Limits
	l.MaxPayload = orDefault(l.MaxPayload, defaultMaxPayload)
	l.MaxSubscriptions = orDefault(l.MaxSubscriptions, defaultMaxSubscriptions)
	l.MaxFiltersPerSubscribe = orDefault(l.MaxFiltersPerSubscribe, defaultMaxFilters)
	if l.MaxPublishRate < 0 {
		return o, fmt.Errorf("%w: Limits.MaxPublishRate is negative", ErrInvalidOptions)
	}
	ob := &o.Outbound
	switch {
	case ob.Messages < 0:
		return o, fmt.Errorf("%w: Outbound.Messages is negative", ErrInvalidOptions)
	case ob.Messages > math.MaxInt32:
		return o, fmt.Errorf("%w: Outbound.Messages is larger than %d", ErrInvalidOptions, math.MaxInt32)
	case ob.Bytes < 0:
		return o, fmt.Errorf("%w: Outbound.Bytes is negative", ErrInvalidOptions)
	}
	ob.Messages = orDefault(ob.Messages, defaultOutboundMessages)
	ob.Bytes = orDefault(ob.Bytes, defaultOutboundBytes)
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
	}
	return o, nil
}

// orDefault maps zero to def and a negative value to 0, meaning no limit.
func orDefault(v, def int) int {
	switch {
	case v == 0:
		return def
	case v < 0:
		return 0
	}
	return v
}

// isLoopbackAddr reports whether addr is host:port with a loopback IP address or
// "localhost" as its host. An empty host (every address) is not loopback.
func isLoopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

func addrOrDefault(addr string) string {
	if addr == "" {
		return defaultListenAddr
	}
	return addr
}
