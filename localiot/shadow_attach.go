package localiot

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	mqttc "github.com/eclipse/paho.mqtt.golang"

	"github.com/shadowsync/shadowsync/internal/quickack"
	"github.com/shadowsync/shadowsync/shadowstate"
)

// BrokerShadowOptions configure a Device Shadow service that runs as an ordinary MQTT
// client of any broker (mosquitto, EMQX, ...), so that shadows work on brokers that have
// no shadow service of their own. The zero value is not usable: Broker is required.
type BrokerShadowOptions struct {
	// Broker is the broker's URL: mqtt://host:port or tcp://host:port for plain MQTT,
	// mqtts://host:port or ssl://host:port for TLS. Required.
	Broker string
	// ClientID is the service's MQTT client ID. Defaults to "localiot-shadow-" plus a
	// random suffix, so that two services never kick each other off.
	ClientID string
	// Username and Password are sent in CONNECT when set.
	Username string
	Password string
	// TLSConfig is used for mqtts:// brokers. Defaults to the system roots.
	TLSConfig *tls.Config
	// Store keeps the shadows. Defaults to a new MemoryStore.
	Store Store
	// EventMirror, when set, also publishes every delta and documents message under
	// this topic prefix without the reserved $aws (shadowstate.MirrorTopic), for fleet
	// services on brokers that never deliver '$' topics to shared subscriptions
	// (mosquitto 2.0): they watch the mirror with shadowclient.FleetWatch.Mirror.
	// Empty means no mirror.
	EventMirror string
	// Logger receives the service's logs. Defaults to discarding them.
	Logger *slog.Logger
}

// BrokerShadowService is the Device Shadow service attached to an external broker: it
// subscribes to every shadow request topic, answers each request as AWS IoT would,
// and publishes the replies through the broker. Requests are handled one at a time in
// the order the broker delivers them. Build it with NewBrokerShadowService and run it
// with Start.
//
// Unlike the embedded service, it cannot tell a client's Last Will from an ordinary
// publish, so a will addressed to a shadow request topic is applied (AWS ignores those).
type BrokerShadowService struct {
	opts  BrokerShadowOptions
	svc   *shadowService
	ready chan struct{}

	mu           sync.Mutex
	pending      []request // requests delivered by the broker, not yet handled
	pendingBytes int       // bytes held in pending: topics, payloads and overheads
	throttled    int       // requests in pending kept only to be answered with 429
	dropped      int       // requests dropped unanswered since the last warning
	wake         chan struct{}
	maxBytes     int // bytes pending may hold before requests are throttled
	maxThrottled int // throttled requests pending may hold before requests are dropped
}

// The bounds on the requests waiting to be handled: beyond maxPendingBytes of
// payloads a request is answered with 429 instead of being applied, and beyond
// maxThrottledRequests such answers still owed, it is dropped (and counted in a
// warning), so a flood cannot exhaust memory.
const (
	maxPendingBytes      = 64 << 20
	maxThrottledRequests = 100_000
	requestOverhead      = 64 // bytes counted per request on top of its topic and payload
)

type request struct {
	topic     string
	payload   []byte
	token     string // for a throttled request, its clientToken
	throttled bool   // answer with 429 instead of applying it
}

// NewBrokerShadowService checks the options and prepares the service; it connects to
// nothing until Start.
func NewBrokerShadowService(opts BrokerShadowOptions) (*BrokerShadowService, error) {
	if opts.Broker == "" {
		return nil, errors.New("localiot: broker shadow service: Broker URL is required")
	}
	u, err := url.Parse(opts.Broker)
	if err != nil {
		return nil, fmt.Errorf("localiot: broker shadow service: broker URL %q: %w", opts.Broker, err)
	}
	switch u.Scheme {
	case "mqtt":
		u.Scheme = "tcp"
	case "mqtts":
		u.Scheme = "ssl"
	case "tcp", "ssl":
	default:
		return nil, fmt.Errorf("localiot: broker shadow service: broker URL %q: scheme must be mqtt, mqtts, tcp or ssl", opts.Broker)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("localiot: broker shadow service: broker URL %q has no host", opts.Broker)
	}
	opts.Broker = u.String()
	if opts.ClientID == "" {
		var b [6]byte
		_, _ = rand.Read(b[:])
		opts.ClientID = "localiot-shadow-" + hex.EncodeToString(b[:])
	}
	if strings.ContainsAny(opts.EventMirror, "+#") || strings.HasPrefix(opts.EventMirror, "$") || strings.HasSuffix(opts.EventMirror, "/") {
		return nil, fmt.Errorf("localiot: broker shadow service: EventMirror %q may not contain '+' or '#', start with '$' or end with '/'", opts.EventMirror)
	}
	if opts.Store == nil {
		opts.Store = &MemoryStore{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &BrokerShadowService{
		opts:  opts,
		svc:   newShadowService(opts.Store, nil, opts.Logger),
		ready: make(chan struct{}),
		wake:  make(chan struct{}, 1),

		maxBytes:     maxPendingBytes,
		maxThrottled: maxThrottledRequests,
	}, nil
}

// Ready is closed once the service has subscribed to the request topics for the first
// time: requests published after that are answered.
func (b *BrokerShadowService) Ready() <-chan struct{} { return b.ready }

// Start connects to the broker and serves shadow requests until ctx ends; it
// reconnects and resubscribes by itself when the connection drops. It returns nil
// after ctx ends, or an error if the first connection cannot be made; nothing it
// started runs after it returns.
func (b *BrokerShadowService) Start(ctx context.Context) error {
	log := b.opts.Logger
	var (
		once    sync.Once
		helpers sync.WaitGroup // the subscriptions' waits and the reconnect loop
	)
	lost := make(chan struct{}, 1)
	co := mqttc.NewClientOptions().
		AddBroker(b.opts.Broker).
		SetClientID(b.opts.ClientID).
		SetUsername(b.opts.Username).
		SetPassword(b.opts.Password).
		SetCleanSession(true).
		SetOrderMatters(true).
		// paho's own reconnect goroutine would outlive Disconnect while it sleeps
		// between attempts: reconnect is the service's own loop, stopped by ctx.
		SetAutoReconnect(false).
		SetKeepAlive(30 * time.Second).
		SetConnectTimeout(attachConnectTimeout)
	co.SetCustomOpenConnectionFn(b.dial)
	co.SetOnConnectHandler(func(c mqttc.Client) {
		filters := make(map[string]byte, len(shadowRequestFilters))
		for _, f := range shadowRequestFilters {
			filters[f] = 1
		}
		// The subscription is waited for on a goroutine of its own: paho runs this
		// handler on its connection goroutine, which must stay free to read the SUBACK.
		helpers.Go(func() {
			tok := c.SubscribeMultiple(filters, b.enqueue)
			timer := time.NewTimer(30 * time.Second)
			defer timer.Stop()
			select {
			case <-tok.Done():
				if err := tok.Error(); err != nil {
					log.Error("shadow service could not subscribe to the request topics", "broker", b.opts.Broker, "error", err)
					return
				}
			case <-timer.C:
				log.Error("shadow service could not subscribe to the request topics: no SUBACK within 30s", "broker", b.opts.Broker)
				return
			case <-ctx.Done():
				return
			}
			log.Info("shadow service attached", "broker", b.opts.Broker, "client", b.opts.ClientID)
			once.Do(func() { close(b.ready) })
		})
	})
	co.SetConnectionLostHandler(func(_ mqttc.Client, err error) {
		log.Warn("shadow service lost its broker connection; reconnecting", "broker", b.opts.Broker, "error", err)
		select {
		case lost <- struct{}{}:
		default:
		}
	})
	client := mqttc.NewClient(co)
	if err := connectOnce(ctx, client); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("localiot: broker shadow service: connect to %s: %w", b.opts.Broker, err)
	}
	defer helpers.Wait()
	defer client.Disconnect(250)
	helpers.Go(func() { b.reconnect(ctx, client, lost) })

	// Replies are published without waiting for each PUBACK in turn (which would cost
	// a round trip to the broker per reply, three per update): up to
	// maxRepliesInFlight are outstanding, and one goroutine waits for their
	// acknowledgements in order and logs any that fails.
	sent := make(chan sentReply, maxRepliesInFlight)
	acked := make(chan struct{})
	go func() {
		defer close(acked)
		for r := range sent {
			r.await(ctx, log)
		}
	}()
	defer func() {
		close(sent)
		<-acked
	}()
	send := func(topic string, payload []byte) {
		t := client.Publish(topic, 1, false, payload)
		select {
		case sent <- sentReply{topic: topic, token: t, at: time.Now()}:
		case <-ctx.Done(): // stopping: the broker may be gone already
		}
	}
	publish := func(topic string, payload []byte) {
		send(topic, payload)
		if b.opts.EventMirror == "" {
			return
		}
		if _, _, kind, ok := shadowstate.ParseTopic(topic); ok && (kind == shadowstate.DeltaKind || kind == shadowstate.Documents) {
			send(shadowstate.MirrorTopic(b.opts.EventMirror, topic), payload)
		}
	}
	for {
		b.mu.Lock()
		batch, dropped := b.pending, b.dropped
		b.pending, b.pendingBytes, b.throttled, b.dropped = nil, 0, 0, 0
		b.mu.Unlock()
		if dropped > 0 {
			log.Warn("shadow service dropped requests unanswered: too many were waiting", "dropped", dropped)
		}
		if n := throttledIn(batch); n > 0 {
			log.Warn("shadow service answered requests with 429: too many were waiting", "throttled", n)
		}
		for _, r := range batch {
			if r.throttled {
				b.svc.throttle(r.topic, r.token, publish)
				continue
			}
			b.svc.handle(r.topic, r.payload, publish)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-b.wake:
		}
	}
}

// maxRepliesInFlight bounds the replies published and not yet acknowledged by the
// broker; the service waits when it is reached, so a broker that stops acknowledging
// slows it down instead of letting replies pile up.
const maxRepliesInFlight = 256

// replyAckTimeout is how long a reply may wait for the broker's PUBACK before it is
// logged as not acknowledged.
const replyAckTimeout = 10 * time.Second

// sentReply is a reply handed to paho, waiting for the broker's acknowledgement.
type sentReply struct {
	topic string
	token mqttc.Token
	at    time.Time
}

// await waits for r's acknowledgement, up to replyAckTimeout after it was sent, and
// logs a reply that failed or was not acknowledged.
func (r sentReply) await(ctx context.Context, log *slog.Logger) {
	timer := time.NewTimer(time.Until(r.at.Add(replyAckTimeout)))
	defer timer.Stop()
	select {
	case <-r.token.Done():
		if err := r.token.Error(); err != nil {
			log.Error("shadow reply not delivered to the broker", "topic", r.topic, "error", err)
		}
	case <-timer.C:
		log.Error("shadow reply not acknowledged by the broker within 10s", "topic", r.topic)
	case <-ctx.Done(): // stopping: the broker may be gone already
	}
}

// attachConnectTimeout bounds one connection attempt to the broker.
const attachConnectTimeout = 10 * time.Second

// connectOnce makes one connection attempt. When ctx ends first it still waits for
// the attempt to finish (at most attachConnectTimeout), so that no paho goroutine of it is
// left running, and returns ctx's error.
func connectOnce(ctx context.Context, client mqttc.Client) error {
	tok := client.Connect()
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		tok.WaitTimeout(attachConnectTimeout + time.Second)
		client.Disconnect(0)
		return ctx.Err()
	}
}

// reconnect connects client again each time lost says the connection dropped, with
// a delay doubling from 100 ms to 5 s between failed attempts, until ctx ends.
func (b *BrokerShadowService) reconnect(ctx context.Context, client mqttc.Client, lost <-chan struct{}) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-lost:
		}
		for delay := 100 * time.Millisecond; ; delay = min(2*delay, 5*time.Second) {
			timer := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				timer.Stop()
				return
			case <-timer.C:
			}
			err := connectOnce(ctx, client)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return
			}
			b.opts.Logger.Warn("shadow service cannot reach its broker; retrying", "broker", b.opts.Broker, "retry_in", min(2*delay, 5*time.Second), "error", err)
		}
	}
}

// dial opens the service's connection to the broker (tcp:// or ssl://, the schemes
// NewBrokerShadowService leaves) for paho. It asks the kernel to acknowledge what
// arrives at once (internal/quickack): the service receives its replies' PUBACKs and
// sends nothing back, and a broker using Nagle's algorithm (mosquitto by default)
// would hold the next request behind a delayed acknowledgement for up to 40 ms.
func (b *BrokerShadowService) dial(u *url.URL, o mqttc.ClientOptions) (net.Conn, error) {
	d := net.Dialer{Timeout: o.ConnectTimeout}
	conn, err := d.Dial("tcp", u.Host)
	if err != nil {
		return nil, err
	}
	conn = quickack.Wrap(conn)
	if u.Scheme != "ssl" {
		return conn, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if b.opts.TLSConfig != nil {
		cfg = b.opts.TLSConfig.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = u.Hostname()
	}
	tc := tls.Client(conn, cfg)
	if o.ConnectTimeout > 0 {
		_ = conn.SetDeadline(time.Now().Add(o.ConnectTimeout))
	}
	if err := tc.Handshake(); err != nil {
		_ = conn.Close()
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	return tc, nil
}

// throttledIn counts the throttled requests of batch.
func throttledIn(batch []request) int {
	n := 0
	for _, r := range batch {
		if r.throttled {
			n++
		}
	}
	return n
}

// enqueue receives requests from paho. It never blocks, so paho's connection goroutine
// stays free to read the acknowledgements of the replies being published.
// Beyond its bounds a request is kept only to be answered with 429, and past those
// dropped.
func (b *BrokerShadowService) enqueue(_ mqttc.Client, m mqttc.Message) {
	topic, payload := m.Topic(), m.Payload()
	// Every request costs its bytes plus a fixed overhead, so that a flood of empty
	// requests (gets, deletes) is bounded too.
	cost := len(topic) + len(payload) + requestOverhead
	b.mu.Lock()
	switch {
	case b.pendingBytes+cost <= b.maxBytes:
		b.pending = append(b.pending, request{topic: topic, payload: payload})
		b.pendingBytes += cost
		b.mu.Unlock()
	case b.throttled < b.maxThrottled:
		b.throttled++ // reserve the slot; the token is read outside the lock
		b.mu.Unlock()
		r := request{topic: topic, token: requestToken(payload), throttled: true}
		b.mu.Lock()
		b.pending = append(b.pending, r)
		b.mu.Unlock()
	default:
		b.dropped++
		b.mu.Unlock()
	}
	select {
	case b.wake <- struct{}{}:
	default:
	}
}
