package localiot

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"hash/maphash"
	"io"
	"log/slog"
	"net"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shadowsync/shadowsync/shadowstate"
)

// stuckClient speaks just enough MQTT 3.1.1 to connect, subscribe and publish, and
// reads only what it is told to: after its SUBACK it reads nothing, like a client
// whose application stopped reading its socket.
type stuckClient struct {
	t    *testing.T
	conn net.Conn
}

// dialStuck opens a connection to addr (host:port), over TLS when cfg is set, with a
// small receive buffer so that the server's writes to it block soon.
func dialStuck(t *testing.T, addr string, cfg *tls.Config) *stuckClient {
	t.Helper()
	return dialRawBuffer(t, addr, cfg, 1024)
}

// dialRawBuffer is dialStuck with a receive buffer of rcvbuf bytes, 0 for the
// system's default.
func dialRawBuffer(t *testing.T, addr string, cfg *tls.Config, rcvbuf int) *stuckClient {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	// Closing the TCP connection, not a TLS one, never waits to send a close_notify.
	t.Cleanup(func() { _ = c.Close() })
	if rcvbuf > 0 {
		if err := c.(*net.TCPConn).SetReadBuffer(rcvbuf); err != nil {
			t.Fatalf("SetReadBuffer: %v", err)
		}
	}
	conn := c
	if cfg != nil {
		cfg = cfg.Clone()
		cfg.ServerName = "localhost"
		tc := tls.Client(c, cfg)
		_ = tc.SetDeadline(time.Now().Add(wait))
		if err := tc.Handshake(); err != nil {
			t.Fatalf("TLS handshake: %v", err)
		}
		conn = tc
	}
	return &stuckClient{t: t, conn: conn}
}

// dialStuckWS opens a WebSocket to the presigned URL u as dialStuck does a TCP
// connection.
func dialStuckWS(t *testing.T, u string) *stuckClient {
	t.Helper()
	d := websocket.Dialer{
		HandshakeTimeout: wait,
		Subprotocols:     []string{"mqtt"},
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err == nil {
				err = c.(*net.TCPConn).SetReadBuffer(1024)
			}
			return c, err
		},
	}
	c, resp, err := d.DialContext(t.Context(), u, nil)
	if err != nil {
		t.Fatalf("WebSocket upgrade: %v", err)
	}
	_ = resp.Body.Close()
	t.Cleanup(func() { _ = c.NetConn().Close() })
	return &stuckClient{t: t, conn: &wsClientConn{Conn: c.NetConn(), ws: c}}
}

// wsClientConn is the client's side of MQTT over WebSocket as a net.Conn: each Write
// is one binary message, and Read reads the messages' bytes in order.
type wsClientConn struct {
	net.Conn // the underlying connection, for deadlines and Close
	ws       *websocket.Conn
	r        io.Reader // the current message; nil between messages
}

func (c *wsClientConn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			_, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if err == io.EOF {
			c.r = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

func (c *wsClientConn) Write(p []byte) (int, error) {
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// send writes pk, giving up after wait: before the fix, the server could stop reading
// a client too.
func (r *stuckClient) send(pk packets.Packet) error {
	var buf bytes.Buffer
	pk.ProtocolVersion = 4
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&buf)
	case packets.Subscribe:
		err = pk.SubscribeEncode(&buf)
	case packets.Publish:
		err = pk.PublishEncode(&buf)
	default:
		err = fmt.Errorf("cannot encode packet type %d", pk.FixedHeader.Type)
	}
	if err != nil {
		return err
	}
	_ = r.conn.SetWriteDeadline(time.Now().Add(wait))
	_, err = r.conn.Write(buf.Bytes())
	return err
}

// read reads one packet's type and body, within wait.
func (r *stuckClient) read() (byte, []byte, error) {
	_ = r.conn.SetReadDeadline(time.Now().Add(wait))
	var b [1]byte
	if _, err := io.ReadFull(r.conn, b[:]); err != nil {
		return 0, nil, err
	}
	typ := b[0] >> 4
	n, mult := 0, 1
	for range 4 {
		if _, err := io.ReadFull(r.conn, b[:]); err != nil {
			return 0, nil, err
		}
		n += int(b[0]&0x7f) * mult
		if b[0]&0x80 == 0 {
			break
		}
		mult *= 128
	}
	body := make([]byte, n)
	_, err := io.ReadFull(r.conn, body)
	return typ, body, err
}

// connect sends CONNECT for a clean session, with a Last Will on willTopic unless it
// is "", and reads a successful CONNACK.
func (r *stuckClient) connect(id, willTopic string) {
	r.t.Helper()
	r.connectWith(id, true, willTopic)
}

// connectSession connects with the clean session flag clean, and no Last Will.
func (r *stuckClient) connectSession(id string, clean bool) {
	r.t.Helper()
	r.connectWith(id, clean, "")
}

func (r *stuckClient) connectWith(id string, clean bool, willTopic string) {
	r.t.Helper()
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Connect},
		Connect: packets.ConnectParams{
			ProtocolName: []byte("MQTT"), Clean: clean, Keepalive: maxKeepAlive, ClientIdentifier: id,
		},
	}
	if willTopic != "" {
		pk.Connect.WillFlag, pk.Connect.WillTopic, pk.Connect.WillPayload = true, willTopic, []byte(id+" is gone")
	}
	if err := r.send(pk); err != nil {
		r.t.Fatalf("%s: send CONNECT: %v", id, err)
	}
	typ, body, err := r.read()
	if err != nil || typ != packets.Connack || len(body) != 2 || body[1] != 0 {
		// body[0] is the session-present flag
		r.t.Fatalf("%s: CONNACK type %d body %v error %v, want success", id, typ, body, err)
	}
}

// subscribe subscribes to filters at qos and fails the test unless all are granted.
func (r *stuckClient) subscribe(qos byte, filters ...string) {
	r.t.Helper()
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: 1}
	for _, f := range filters {
		pk.Filters = append(pk.Filters, packets.Subscription{Filter: f, Qos: qos})
	}
	if err := r.send(pk); err != nil {
		r.t.Fatalf("send SUBSCRIBE: %v", err)
	}
	typ, body, err := r.read()
	want := append([]byte{0, 1}, bytes.Repeat([]byte{qos}, len(filters))...)
	if err != nil || typ != packets.Suback || !bytes.Equal(body, want) {
		r.t.Fatalf("SUBACK type %d body %v error %v, want %v", typ, body, err, want)
	}
}

// publish publishes payload on topic at QoS 0.
func (r *stuckClient) publish(topic string, payload []byte) error {
	return r.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, TopicName: topic, Payload: payload})
}

// fillUpdate is an update request of about 7 KiB of desired state, different for each
// i; its accepted reply carries the state once and its documents message twice.
func fillUpdate(i int) []byte {
	b, _ := json.Marshal(map[string]any{"state": map[string]any{"desired": map[string]any{
		"fill": strings.Repeat(string(rune('a'+i%26)), 7*1024),
	}}})
	return b
}

// fill has pub send updates of thing's shadow, 50 at a time, until blocked reports
// true once the service has applied them (or stopped applying them: before the fix
// it stopped at the first reply it could not hand over), then 300 more (over 4 MB)
// so that the socket stays full even once the kernel has grown its buffers; at most
// max updates.
func fill(t *testing.T, s *Server, pub *stuckClient, thing string, max int, blocked func() bool) {
	t.Helper()
	id := shadowstate.ID{Thing: thing}
	topic := id.Topic(shadowstate.OpUpdate, shadowstate.Request)
	sent, extra := 0, -1 // extra: updates still to send once blocked; -1 before
	for sent < max && extra != 0 {
		for range 50 {
			if err := pub.publish(topic, fillUpdate(sent)); err != nil {
				t.Logf("fill stopped after %d updates: %v", sent, err)
				return
			}
			sent++
		}
		// Pace the fill: wait until the service has applied every update sent, or has
		// applied none for 300 ms (it is blocked on the stuck client, which is the
		// point), for at most wait; either way the fill goes on.
		last, since := int64(-1), time.Now()
		poll(wait, func() bool {
			sh, err := s.Shadow(id)
			if err != nil {
				t.Fatal(err)
			}
			if sh.Version >= int64(sent) || time.Since(since) > 300*time.Millisecond {
				return true
			}
			if sh.Version != last {
				last, since = sh.Version, time.Now()
			}
			return false
		})
		switch {
		case extra > 0:
			extra -= 50
		case blocked():
			t.Logf("the stuck client's socket is full after %d updates", sent)
			extra = 300
		}
	}
	if extra < 0 {
		t.Fatalf("%d updates of %s did not fill the stuck client's socket", max, thing)
	}
}

// queuedFor returns how many bytes the server holds for client id because its socket
// takes no more; 0 when the client is not connected.
func queuedFor(s *Server, id string) int {
	cl, ok := s.broker.Clients.Get(id)
	if !ok || cl.Closed() {
		return 0
	}
	if oc := s.conns.lookup(cl); oc != nil {
		return oc.queued()
	}
	return 0
}

// connected reports whether client id is connected.
func connected(s *Server, id string) bool {
	cl, ok := s.broker.Clients.Get(id)
	return ok && !cl.Closed()
}

// stripe returns the index of the shadow service lock a classic shadow uses.
func stripe(s *Server, thing string) uint64 {
	return maphash.String(s.shadow.seed, shadowstate.ID{Thing: thing}.Prefix()) % uint64(len(s.shadow.locks))
}

// others picks n thing names of which a tenth share the shadow service lock of
// thing's shadow: the shadows that a request blocked while holding that lock freezes.
func others(s *Server, thing string, n int) []string {
	var same, rest []string
	for i := 0; (len(same) < n/10 || len(rest) < n-n/10) && i < 1000*n; i++ {
		name := fmt.Sprintf("other-%d", i)
		if stripe(s, name) == stripe(s, thing) {
			if len(same) < n/10 {
				same = append(same, name)
			}
		} else if len(rest) < n-n/10 {
			rest = append(rest, name)
		}
	}
	return append(same, rest...)
}

// requestLatencies connects every thing in names through the plain listener as that
// thing, subscribes it to its update replies, then has them all update their shadows
// at once, and returns how long each waited for its accepted reply (limit for those
// that had none within limit).
func requestLatencies(t *testing.T, s *Server, names []string, limit time.Duration) map[string]time.Duration {
	t.Helper()
	clients := make([]*client, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Go(func() {
			c, err := connect(t, s.Endpoints().Plain, name)
			if err != nil {
				t.Errorf("connect %s: %v", name, err)
				return
			}
			tok := c.Subscribe(shadowstate.ID{Thing: name}.Topic(shadowstate.OpUpdate, shadowstate.Accepted), 1, nil)
			if !tok.WaitTimeout(wait) || tok.Error() != nil {
				t.Errorf("subscribe %s: %v", name, tok.Error())
				return
			}
			clients[i] = c
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	var mu sync.Mutex
	got := make(map[string]time.Duration, len(names))
	for i, name := range names {
		wg.Go(func() {
			c := clients[i]
			topic := shadowstate.ID{Thing: name}.Topic(shadowstate.OpUpdate, shadowstate.Request)
			start := time.Now()
			c.Publish(topic, 1, false, `{"state":{"reported":{"ok":true}}}`)
			took := limit
			select {
			case <-c.msgs:
				took = time.Since(start)
			case <-time.After(limit):
			}
			mu.Lock()
			got[name] = took
			mu.Unlock()
		})
	}
	wg.Wait()
	return got
}

// A client that stops reading must not delay anybody else's shadow requests. Before,
// the broker wrote to the client while holding the client's lock, and a QoS 1 reply
// to it waited for that lock while the requester held one of the shadow service's
// locks: a stuck thing froze every shadow behind its own shadow's lock, a stuck
// operator subscribed to everybody's documents froze them all.
func TestStuckSubscriberDelaysNobody(t *testing.T) {
	const things, limit = 100, time.Second
	certs, err := EnsureCerts("", "stuck")
	if err != nil {
		t.Fatal(err)
	}
	operatorTLS, _ := certs.ClientTLS(OperatorCertName)
	thingTLS, _ := certs.ClientTLS("stuck")

	tlsAddr := func(s *Server) string { return strings.TrimPrefix(s.Endpoints().TLS, "mqtts://") }
	tests := []struct {
		name    string
		dial    func(*testing.T, *Server) *stuckClient
		id      string
		filters []string
	}{
		{"thing", func(t *testing.T, s *Server) *stuckClient { return dialStuck(t, tlsAddr(s), thingTLS) }, "stuck", []string{
			"$aws/things/stuck/shadow/update/accepted",
			"$aws/things/stuck/shadow/update/documents",
			"$aws/things/stuck/shadow/update/delta",
			"$aws/things/stuck/shadow/name/+/update/documents",
		}},
		{"operator", func(t *testing.T, s *Server) *stuckClient { return dialStuck(t, tlsAddr(s), operatorTLS) }, "stuck-operator", []string{
			"$aws/things/+/shadow/update/accepted",
			"$aws/things/+/shadow/update/documents",
			"$aws/things/+/shadow/update/delta",
			"$aws/things/+/shadow/name/+/update/documents",
		}},
		{"operator over WebSocket", func(t *testing.T, s *Server) *stuckClient {
			return dialStuckWS(t, presign(t, s.Endpoints().WebSocket, wsOperator.AccessKeyID, wsOperator.SecretAccessKey, wsOperator.SessionToken, time.Now(), 0))
		}, "stuck-ws-operator", []string{
			"$aws/things/+/shadow/update/documents",
			"$aws/things/+/shadow/get/accepted",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startServer(t, Options{
				Plain:     &PlainListener{ThingFromClientID: true},
				TLS:       certs.TLSListener(""),
				WebSocket: &WebSocketListener{Credentials: []Credential{wsOperator}},
				// Room for everything the test sends the stuck client, so that it stays
				// connected with its socket full while the others' requests are timed.
				Outbound: OutboundLimits{Bytes: 256 << 20},
			})
			stuck := tt.dial(t, s)
			stuck.connect(tt.id, "")
			stuck.subscribe(1, tt.filters...)
			names := others(s, "stuck", things)

			// The stuck client updates its shadow (a thing may only use its own topics)
			// until the server holds a megabyte of replies for it that its socket does
			// not take: past what the kernel's buffers can grow to absorb.
			fill(t, s, stuck, "stuck", 2000, func() bool { return queuedFor(s, tt.id) >= 1<<20 })

			lat := requestLatencies(t, s, names, 2*limit)
			var slowest time.Duration
			var late []string
			for name, d := range lat {
				slowest = max(slowest, d)
				if d > limit {
					late = append(late, name)
				}
			}
			slices.Sort(late)
			t.Logf("slowest of %d requests with a stuck %s: %v (%d bytes queued for it)", len(lat), tt.name, slowest, queuedFor(s, tt.id))
			if len(late) > 0 {
				t.Errorf("%d of %d other things waited more than %v for their reply: %v", len(late), len(lat), limit, late)
			}
			if !connected(s, tt.id) || queuedFor(s, tt.id) == 0 {
				t.Errorf("the stuck client was disconnected or unblocked during the measurement")
			}
		})
	}
}

// logCounter is a slog handler that counts the records with a given message.
type logCounter struct {
	msg string
	mu  *sync.Mutex
	n   *int
}

func newLogCounter(msg string) logCounter {
	return logCounter{msg: msg, mu: new(sync.Mutex), n: new(int)}
}

func (h logCounter) Enabled(_ context.Context, l slog.Level) bool { return true }

func (h logCounter) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.mu.Lock()
		*h.n++
		h.mu.Unlock()
	}
	return nil
}

func (h logCounter) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h logCounter) WithGroup(string) slog.Handler      { return h }

func (h logCounter) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return *h.n
}

// slowMetric returns the value of the server's slow-client counter for queue.
func slowMetric(t *testing.T, s *Server, queue string) float64 {
	t.Helper()
	return slowCount(t, s.Registry(), queue)
}

// slowCount returns the value of the slow-client counter for queue in reg.
func slowCount(t *testing.T, reg *prometheus.Registry, queue string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "shadowsync_localiot_slow_clients_disconnected_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "queue" && l.GetValue() == queue {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

const slowLog = "slow client disconnected: its outbound queue is full"

// A client whose outbound queue fills up is disconnected, its Last Will published,
// counted once and logged once.
func TestSlowSubscriberDisconnected(t *testing.T) {
	logs := newLogCounter(slowLog)
	gone := make(chan string, 16)
	s := startServer(t, Options{
		Logger: slog.New(logs),
		Observe: func(e Event) {
			if e.Kind == EventDisconnect {
				gone <- e.ClientID
			}
		},
	})
	watcher := mustConnect(t, s.Endpoints().Plain, "watcher")
	watcher.mustSubscribe(t, "lwt/#")
	stuck := dialStuck(t, strings.TrimPrefix(s.Endpoints().Plain, "mqtt://"), nil)
	stuck.connect("stuck-operator", "lwt/stuck-operator")
	stuck.subscribe(1, "$aws/things/+/shadow/update/documents")

	// A healthy operator updates shadows until the stuck one is dropped: past its 4 MiB
	// queue and what the sockets hold, well within 2000 updates of ~14 KiB documents.
	pub := dialStuck(t, strings.TrimPrefix(s.Endpoints().Plain, "mqtt://"), nil)
	pub.connect("publisher", "")
	var dropped bool
	for i := 0; i < 2000 && !dropped; i++ {
		if err := pub.publish(fmt.Sprintf("$aws/things/t%d/shadow/update", i%100), fillUpdate(i)); err != nil {
			t.Fatalf("publisher: %v", err)
		}
		select {
		case id := <-gone:
			dropped = id == "stuck-operator"
		default:
		}
	}
	if !dropped {
		select {
		case id := <-gone:
			dropped = id == "stuck-operator"
		case <-time.After(wait):
		}
	}
	if !dropped {
		t.Fatalf("the stuck client is still connected, %d bytes queued for it", queuedFor(s, "stuck-operator"))
	}
	watcher.expect(t, "lwt/stuck-operator", "stuck-operator is gone")
	if got := slowMetric(t, s, queueBytes); got != 1 {
		t.Errorf("slow clients counted (bytes) = %v, want 1", got)
	}
	if got := logs.count(); got != 1 {
		t.Errorf("%q logged %d times, want once", slowLog, got)
	}
}

// A client whose queue inside the broker is full (the broker drops the message) is
// disconnected too, counted and logged once however many messages are dropped.
func TestDroppedMessageDisconnectsClient(t *testing.T) {
	logs := newLogCounter(slowLog)
	s := startServer(t, Options{Logger: slog.New(logs)})
	c := mustConnect(t, s.Endpoints().Plain, "dropping")
	cl, ok := s.broker.Clients.Get("dropping")
	if !ok {
		t.Fatal("client not found")
	}
	h := &outboundHook{conns: s.conns}
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, TopicName: "t"}
	h.OnPublishDropped(cl, pk) // what the broker calls when the client's queue is full
	h.OnPublishDropped(cl, pk)
	c.expectLost(t)
	if got := slowMetric(t, s, queueMessages); got != 1 {
		t.Errorf("slow clients counted (messages) = %v, want 1", got)
	}
	if got := logs.count(); got != 1 {
		t.Errorf("%q logged %d times, want once", slowLog, got)
	}
}

// heapInuse returns the heap in use after a full garbage collection.
func heapInuse() uint64 {
	runtime.GC()
	runtime.GC() // the second empties the pools the first only moved aside
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// A subscriber that stops reading a busy topic may hold only a bounded queue, and once
// the server has dropped it the memory is back. Before, the broker queued up to 8192
// messages for it and kept them until keep-alive ran out, up to 30 minutes.
func TestSlowSubscriberMemoryReturns(t *testing.T) {
	gone := make(chan string, 16)
	s := startServer(t, Options{Observe: func(e Event) {
		if e.Kind == EventDisconnect {
			gone <- e.ClientID
		}
	}})
	addr := strings.TrimPrefix(s.Endpoints().Plain, "mqtt://")
	stuck := dialStuck(t, addr, nil)
	stuck.connect("stuck", "")
	stuck.subscribe(0, "busy/#")
	pub := dialStuck(t, addr, nil)
	pub.connect("busy-publisher", "")

	start := heapInuse()
	payload := bytes.Repeat([]byte{'x'}, 100<<10)
	const n = 300 // 30 MB
	for i := range n {
		if err := pub.publish(fmt.Sprintf("busy/%d", i%8), payload); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	peak := heapInuse()
	select {
	case id := <-gone:
		if id != "stuck" {
			t.Fatalf("%s disconnected, want the stuck subscriber", id)
		}
	case <-time.After(wait):
		t.Fatalf("the stuck subscriber is still connected; heap in use %d MB, %d MB at the start", peak>>20, start>>20)
	}
	// A QoS 1 round trip on the publisher's connection: the server has handled every
	// message published before it.
	if err := pub.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, TopicName: "busy/end", PacketID: 7}); err != nil {
		t.Fatal(err)
	}
	if typ, _, err := pub.read(); err != nil || typ != packets.Puback {
		t.Fatalf("PUBACK: type %d, error %v", typ, err)
	}
	after := heapInuse()
	t.Logf("heap in use: %.1f MB at the start, %.1f MB after publishing %d MB, %.1f MB once the stuck subscriber was dropped",
		float64(start)/(1<<20), float64(peak)/(1<<20), n*len(payload)>>20, float64(after)/(1<<20))
	if after > 2*start {
		t.Errorf("heap in use %d bytes after the run, more than twice the %d at its start", after, start)
	}
}

// Resuming a persistent session resends all its unacknowledged QoS 1 messages at once,
// more than the queue's bound here: that burst is the client's own backlog, not a
// sign of slowness, and must not cost it the connection.
func TestResumedSessionBacklogIsNotSlow(t *testing.T) {
	sessions := make(chan struct{}, 2)
	s := startServer(t, Options{
		Outbound: OutboundLimits{Bytes: 1 << 20},
		Observe: func(e Event) {
			if e.Kind == EventConnect && e.ClientID == "persistent" {
				sessions <- struct{}{}
			}
		},
	})
	established := func() {
		t.Helper()
		select {
		case <-sessions:
		case <-time.After(wait):
			t.Fatalf("session not established; slow clients counted: %v", slowMetric(t, s, queueBytes))
		}
	}
	addr := strings.TrimPrefix(s.Endpoints().Plain, "mqtt://")
	dev := dialRawBuffer(t, addr, nil, 0)
	dev.connectSession("persistent", false)
	established()
	dev.subscribe(1, "backlog/#")
	_ = dev.conn.Close()

	watcher := mustConnect(t, s.Endpoints().Plain, "watcher")
	watcher.mustSubscribe(t, "marker")
	pub := mustConnect(t, s.Endpoints().Plain, "backlog-publisher")
	payload := strings.Repeat("x", 100<<10)
	const n = 100 // 10 MB for a 1 MiB bound
	for i := range n {
		pub.publish(t, fmt.Sprintf("backlog/%d", i), payload)
	}
	// The server handles one client's publishes in order: once the marker is
	// delivered, every message of the backlog waits in the session.
	pub.publish(t, "marker", "")
	watcher.expect(t, "marker", "")

	// Reconnect, and read nothing until the server has resent the whole backlog.
	dev = dialRawBuffer(t, addr, nil, 0)
	dev.connectSession("persistent", false)
	established()
	if got := slowMetric(t, s, queueBytes); got != 0 {
		t.Fatalf("the resumed client was counted slow (%v) for its own backlog", got)
	}
	for i := range n {
		typ, body, err := dev.read()
		if err != nil || typ != packets.Publish || len(body) < len(payload) {
			t.Fatalf("message %d of the backlog: type %d, %d bytes, error %v", i, typ, len(body), err)
		}
	}
}
