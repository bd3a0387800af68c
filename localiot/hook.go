package localiot

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/shadowsync/shadowsync/shadowstate"
)

// Listener IDs, which also tell the hook how a client authenticated.
const (
	listenerPlain = "plain"
	listenerTLS   = "tls"
	listenerWS    = "ws"
)

// gateHook is the broker hook that plays AWS IoT Core's part: it identifies each
// connection (operator or thing), authorises topics like an AWS IoT policy, and
// enforces the broker limits. The broker's inline client (the shadow service) is
// never restricted. It is safe for concurrent use.
//
// mochi asks every hook's OnConnectAuthenticate and OnACLCheck and allows as soon as
// one says yes, so no other hook attached to the broker may provide those two.
type gateHook struct {
	mqtt.HookBase
	broker *mqtt.Server
	policy *policy
	limits Limits
	plain  PlainListener
	ops    [][]byte // DER of the operator certificates
	log    *slog.Logger

	// clients maps each *mqtt.Client to its *clientState from OnConnect until its
	// session ends: at a clean disconnect, when the session expires, or when a new
	// connection with the same client ID replaces it. A kept session's state lets
	// QoS 1 messages queued for it pass OnACLCheck.
	clients sync.Map
}

// clientState is what the hook remembers about one connection.
type clientState struct {
	who principal
	// ephemeral is set when the session ends with the connection (MQTT 3 clean
	// session, MQTT 5 session expiry 0); the broker then removes the client itself.
	ephemeral bool

	mu     sync.Mutex
	tokens float64   // publish throttle bucket
	last   time.Time // when tokens was last refilled
}

// ID names the hook in mochi's logs.
func (h *gateHook) ID() string { return "localiot-gate" }

// Provides lists the hook methods gateHook implements.
func (h *gateHook) Provides(b byte) bool {
	switch b {
	case mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnSessionEstablish, mqtt.OnACLCheck, mqtt.OnDisconnect,
		mqtt.OnClientExpired, mqtt.OnPacketRead, mqtt.OnSubscribe, mqtt.OnPublish:
		return true
	}
	return false
}

// OnConnect refuses client IDs AWS refuses, identifies the client, and clamps its
// keep-alive into AWS's range. It refuses, with "not authorized", a thing whose client
// ID is not its own (NAME or NAME@SUFFIX), a will its principal may not publish, the
// broker's own client ID, and any client it cannot identify. A session of another
// principal under the same client ID is discarded, so the client starts clean.
func (h *gateHook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	if !h.limits.Off {
		id := pk.Connect.ClientIdentifier
		if len(id) > maxClientIDBytes || len(id) > 0 && id[0] == '$' {
			h.log.Info("connect refused: client ID breaks AWS rules", "client_id_bytes", len(id), "remote", cl.Net.Remote)
			_ = h.broker.SendConnack(cl, packets.ErrClientIdentifierNotValid, false, nil)
			return packets.ErrClientIdentifierNotValid
		}
		ka := cl.State.Keepalive
		switch {
		case ka == 0 || ka > maxKeepAlive:
			ka = maxKeepAlive
		case ka < minKeepAlive:
			ka = minKeepAlive
		}
		if ka != cl.State.Keepalive {
			cl.State.Keepalive, cl.State.ServerKeepalive = ka, true
		}
	}
	if cl.ID == mqtt.InlineClientId {
		// The broker's own client, through which the shadow service publishes, has
		// this client ID; a connection using it would take that client's place.
		return h.refuse(cl, fmt.Sprintf("client ID %q is the embedded broker's own", cl.ID))
	}
	who, err := h.identify(cl)
	if err != nil {
		return h.refuse(cl, err.Error())
	}
	if !who.operator && clientIDThing(cl.ID) != who.thing {
		// The usual AWS IoT policy allows iot:Connect only with the client ID
		// ${iot:Connection.Thing.ThingName}.
		return h.refuse(cl, fmt.Sprintf("client ID %q is not %q or %q followed by a suffix (as %s)", cl.ID, who.thing, who.thing+clientIDSeparator, who))
	}
	if pk.Connect.WillFlag {
		// The will is a publish the broker makes later on the client's behalf, so it
		// passes the same check now; AWS IoT refuses the CONNECT of a client whose
		// policy does not allow its will.
		if reason := h.publishRefusal(who, pk.Connect.WillTopic, pk.Connect.WillRetain); reason != "" {
			return h.refuse(cl, fmt.Sprintf("last will on %q: %s (as %s)", pk.Connect.WillTopic, reason, who))
		}
	}
	if old, ok := h.broker.Clients.Get(cl.ID); ok && old != cl {
		if st, known := h.state(old); !known || st.who != who {
			ephemeral := !known || st.ephemeral
			if !h.endForeignSession(old, ephemeral) {
				return h.refuse(cl, fmt.Sprintf("the session of client ID %q, held by another identity, did not end within %v", cl.ID, sessionEndWait))
			}
			h.log.Info("session of another identity discarded: the new connection starts clean", "client", cl.ID, "as", who.String())
		}
		h.clients.Delete(old)
	}
	h.clients.Store(cl, &clientState{who: who, ephemeral: cleanSession(cl), tokens: max(h.limits.MaxPublishRate, 1), last: time.Now()})
	h.log.Debug("client connected", "client", cl.ID, "as", who.String(), "listener", cl.Net.Listener)
	return nil
}

// sessionEndWait bounds how long a connection waits for the session it replaces, held by
// another identity, to end.
const sessionEndWait = 2 * time.Second

// endForeignSession ends the session of old, whose client ID a connection of another
// principal is taking, so that the broker hands nothing of it (subscriptions, queued
// messages) to the new connection: mochi would otherwise let the new connection
// inherit it. It reports false if old's session did not end within sessionEndWait.
func (h *gateHook) endForeignSession(old *mqtt.Client, ephemeral bool) bool {
	if !old.Closed() {
		_ = h.broker.DisconnectClient(old, packets.ErrSessionTakenOver)
	}
	if !ephemeral {
		// A kept session outlives its connection and nothing else removes it now:
		// discard it here. (Removing an ephemeral one here instead would race with its
		// own goroutine, which removes the client by ID and could remove the new one.)
		h.broker.UnsubscribeClient(old)
		old.ClearInflights()
		h.broker.Clients.Delete(old.ID)
		return true
	}
	deadline := time.Now().Add(sessionEndWait)
	for {
		if cur, ok := h.broker.Clients.Get(old.ID); !ok || cur != old {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(time.Millisecond)
	}
}

// clientIDSeparator separates a thing's name from the suffix in the client ID of one of
// several connections of that thing ("Pump-7@app"). It cannot occur in a thing name,
// so no client ID a thing may use is another thing's.
const clientIDSeparator = "@"

// clientIDThing returns the thing a client ID stands for: the whole ID, or what
// precedes its first clientIDSeparator.
func clientIDThing(id string) string {
	thing, _, _ := strings.Cut(id, clientIDSeparator)
	return thing
}

// refuse answers a CONNECT with "not authorized", logging why, and returns the error
// that makes the broker close the connection. No state is kept, so the client never
// counts as connected and its will is never sent.
func (h *gateHook) refuse(cl *mqtt.Client, reason string) error {
	h.log.Info("connect refused", "client", cl.ID, "listener", cl.Net.Listener, "remote", cl.Net.Remote, "reason", reason)
	code := packets.ErrNotAuthorized
	if cl.Properties.ProtocolVersion < 5 {
		// The broker sends this one to MQTT 3 clients as return code 5, not authorized.
		code = packets.ErrBadUsernameOrPassword
	}
	_ = h.broker.SendConnack(cl, code, false, nil)
	return packets.ErrNotAuthorized
}

// OnConnectAuthenticate accepts exactly the clients OnConnect identified.
func (h *gateHook) OnConnectAuthenticate(cl *mqtt.Client, _ packets.Packet) bool {
	_, ok := h.clients.Load(cl)
	return ok
}

// takeoverWait bounds how long a connection waits for the one it replaces to end.
const takeoverWait = 2 * time.Second

// OnSessionEstablish runs once a connection is authenticated, before the broker lets
// it take over the client ID. When a connection with that client ID and a clean
// session is still open, or still ending, the broker would disconnect it and go on at
// once, while the old connection's own ending — which removes the client ID's
// subscriptions and registration — can still run and remove the new connection's
// instead (a client that reconnects quickly then stays connected but receives
// nothing). So the old connection is disconnected here, and the new one waits until it
// has ended, as AWS IoT does when a client ID connects again.
func (h *gateHook) OnSessionEstablish(cl *mqtt.Client, _ packets.Packet) {
	old, ok := h.broker.Clients.Get(cl.ID)
	if !ok || old == cl || !cleanSession(old) {
		return // nothing to replace, or a kept session the broker hands over whole
	}
	_ = h.broker.DisconnectClient(old, packets.ErrSessionTakenOver)
	deadline := time.Now().Add(takeoverWait)
	for time.Now().Before(deadline) {
		if cur, ok := h.broker.Clients.Get(cl.ID); !ok || cur != old {
			return
		}
		time.Sleep(time.Millisecond)
	}
	h.log.Warn("the connection replaced by a new one with its client ID has not ended; going on", "client", cl.ID, "old_remote", old.Net.Remote, "remote", cl.Net.Remote)
}

// cleanSession reports whether cl's session ends with its connection.
func cleanSession(cl *mqtt.Client) bool {
	if cl.Properties.ProtocolVersion == 5 {
		return cl.Properties.Props.SessionExpiryInterval == 0
	}
	return cl.Properties.Clean
}

// OnDisconnect forgets the client unless its session is kept for a reconnect.
func (h *gateHook) OnDisconnect(cl *mqtt.Client, _ error, expire bool) {
	if expire {
		h.clients.Delete(cl)
	}
}

// OnClientExpired forgets a kept session that has expired.
func (h *gateHook) OnClientExpired(cl *mqtt.Client) {
	h.clients.Delete(cl)
}

// identify works out who a new connection acts as from how it connected.
func (h *gateHook) identify(cl *mqtt.Client) (principal, error) {
	switch cl.Net.Listener {
	case listenerPlain:
		if !h.plain.ThingFromClientID {
			return principal{operator: true}, nil
		}
		return thingPrincipal(clientIDThing(cl.ID))
	case listenerTLS:
		conn, ok := cl.Net.Conn.(*tls.Conn)
		if !ok {
			return principal{}, errors.New("not a TLS connection")
		}
		certs := conn.ConnectionState().PeerCertificates
		if len(certs) == 0 {
			return principal{}, errors.New("no client certificate")
		}
		for _, op := range h.ops {
			if bytes.Equal(op, certs[0].Raw) {
				return principal{operator: true}, nil
			}
		}
		return thingPrincipal(certs[0].Subject.CommonName)
	case listenerWS:
		conn, ok := cl.Net.Conn.(*wsConn)
		if !ok {
			return principal{}, errors.New("not a WebSocket connection")
		}
		return conn.who, nil
	}
	return principal{}, fmt.Errorf("unknown listener %q", cl.Net.Listener)
}

func thingPrincipal(name string) (principal, error) {
	if err := (shadowstate.ID{Thing: name}).Validate(); err != nil {
		return principal{}, err
	}
	return principal{thing: name}, nil
}

// state returns the client's state; a client without one (refused at connect, or its
// session over) is allowed nothing.
func (h *gateHook) state(cl *mqtt.Client) (*clientState, bool) {
	v, ok := h.clients.Load(cl)
	if !ok {
		return nil, false
	}
	return v.(*clientState), true
}

// OnACLCheck authorises subscription filters and message delivery (write false).
// Publishes are authorised in OnPublish instead, where they can be dropped without
// mochi disconnecting a QoS 1 publisher.
func (h *gateHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if cl.Net.Inline || write {
		return true
	}
	st, ok := h.state(cl)
	return ok && h.policy.mayRead(st.who, topic)
}

// OnPacketRead closes the connection of a client that sends a QoS 2 or oversized
// PUBLISH: AWS IoT answers neither, and a closed connection is a failure the client
// cannot miss. (ErrRejectPacket is the only error mochi does not ignore here; the
// client's read loop ends with it.)
func (h *gateHook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if h.limits.Off || pk.FixedHeader.Type != packets.Publish {
		return pk, nil
	}
	if pk.FixedHeader.Qos > 1 {
		h.log.Info("connection closed: qos 2 publish", "client", cl.ID, "topic", pk.TopicName)
		return pk, packets.ErrRejectPacket
	}
	if h.limits.MaxPayload > 0 && len(pk.Payload) > h.limits.MaxPayload {
		h.log.Info("connection closed: payload too large", "client", cl.ID, "topic", pk.TopicName, "bytes", len(pk.Payload), "max", h.limits.MaxPayload)
		return pk, packets.ErrRejectPacket
	}
	return pk, nil
}

// OnSubscribe gives the SUBACK failure code to filters past the per-SUBSCRIBE or
// per-connection limits, asking for QoS 2, or breaking the topic rules, by replacing
// them with an invalid (empty) filter that mochi then refuses. Filters the policy
// denies are left for OnACLCheck, which refuses them as "not authorized".
func (h *gateHook) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if cl.Net.Inline || h.limits.Off {
		return pk
	}
	st, ok := h.state(cl)
	if !ok {
		return pk
	}
	held := cl.State.Subscriptions.Len()
	filters := make(packets.Subscriptions, len(pk.Filters))
	copy(filters, pk.Filters)
	seen := make(map[string]bool, len(filters))
	for i, sub := range filters {
		var reason string
		_, existing := cl.State.Subscriptions.Get(sub.Filter)
		switch {
		case h.limits.MaxFiltersPerSubscribe > 0 && i >= h.limits.MaxFiltersPerSubscribe:
			reason = "more filters in one SUBSCRIBE than allowed"
		case sub.Qos > 1:
			reason = "qos 2 is not supported"
		case !topicWithinLimits(sub.Filter):
			reason = "filter longer than 256 bytes or 7 levels"
		case !h.policy.mayRead(st.who, sub.Filter):
			h.log.Info("subscribe denied", "client", cl.ID, "as", st.who.String(), "filter", sub.Filter)
			continue
		case existing || seen[sub.Filter]:
			continue
		case h.limits.MaxSubscriptions > 0 && held >= h.limits.MaxSubscriptions:
			reason = "too many subscriptions on one connection"
		default:
			seen[sub.Filter] = true
			held++
			continue
		}
		h.log.Info("subscribe refused", "client", cl.ID, "filter", sub.Filter, "reason", reason)
		filters[i].Filter = ""
	}
	pk.Filters = filters
	return pk
}

// OnPublish drops (with a log line) publishes the policy denies, whose topic breaks
// AWS's rules, or that exceed the throttle. The broker's inline client, which the
// shadow service publishes its responses through, always passes.
func (h *gateHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil
	}
	st, ok := h.state(cl)
	var reason string
	if ok {
		reason = h.publishRefusal(st.who, pk.TopicName, pk.FixedHeader.Retain)
	}
	switch {
	case !ok:
		reason = "unknown client"
	case reason != "":
	case h.limits.Off:
		return pk, nil
	case !st.allowPublish(h.limits.MaxPublishRate, time.Now()):
		h.log.Debug("publish dropped: throttled", "client", cl.ID, "topic", pk.TopicName)
		return pk, drop(cl, pk)
	default:
		return pk, nil
	}
	attrs := []any{"client", cl.ID, "topic", pk.TopicName, "reason", reason}
	if ok {
		attrs = append(attrs, "as", st.who.String())
	}
	h.log.Info("publish dropped", attrs...)
	return pk, drop(cl, pk)
}

// publishRefusal returns why who may not publish to topic (retained when retain is
// set), or "" when it may. It is the check for a PUBLISH and, at CONNECT, for a will.
// Nobody may retain a message on a reserved ("$") topic: the broker would replay it to
// every later subscriber of that topic, so a retained shadow request or reply would
// reach devices as if the shadow service had sent it.
func (h *gateHook) publishRefusal(who principal, topic string, retain bool) string {
	switch {
	case !h.policy.mayPublish(who, topic):
		return "not authorized"
	case retain && strings.HasPrefix(topic, "$"):
		return "retained message on a reserved topic"
	case !h.limits.Off && !topicWithinLimits(topic):
		return "topic longer than 256 bytes or 7 levels"
	}
	return ""
}

// drop returns the OnPublish error that makes mochi discard pk without closing the
// connection: an MQTT 5 QoS 1 publisher gets a "not authorized" PUBACK; anyone else
// gets the usual acknowledgement for their QoS and no delivery.
func drop(cl *mqtt.Client, pk packets.Packet) error {
	if cl.Properties.ProtocolVersion == 5 && pk.FixedHeader.Qos > 0 {
		return packets.ErrNotAuthorized
	}
	return packets.CodeSuccessIgnore
}

// allowPublish takes a token from the client's bucket, refilled at rate per second up
// to rate (at least 1); rate 0 means no throttle.
func (st *clientState) allowPublish(rate float64, now time.Time) bool {
	if rate <= 0 {
		return true
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	st.tokens = min(max(rate, 1), st.tokens+now.Sub(st.last).Seconds()*rate)
	st.last = now
	if st.tokens < 1 {
		return false
	}
	st.tokens--
	return true
}
