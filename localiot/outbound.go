package localiot

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"
)

// The embedded broker writes to a client's connection while holding that client's
// lock, and takes the same lock to number each QoS 1 message it queues for the client.
// Once a client stops reading, its socket's buffers fill, the write blocks, and with
// it every goroutine that delivers a QoS 1 message to that client: the publishers, and
// the shadow service answering them while it holds the lock of the shadow concerned.
// So every accepted connection is an outboundConn, whose writes never block: they are
// queued in memory, up to a bound, and a goroutine of the connection's own writes them
// to the socket. A client whose queue would pass its bound is disconnected.

// Which queue of a client filled up: the label of the slow-client metric.
const (
	queueBytes    = "bytes"    // encoded bytes the socket has not taken
	queueMessages = "messages" // messages the broker has not encoded yet
)

// errSlowClient is the error a slow client's connection fails with once its
// outbound queue is full.
var errSlowClient = errors.New("localiot: client too slow: outbound queue full")

// closeFlushTime bounds how long a closed connection keeps trying to write what was
// queued before the close (a CONNACK refusing the client, a DISCONNECT), and
// shutdownFlushTime how long shutdown waits for those writes.
const (
	closeFlushTime    = 2 * time.Second
	shutdownFlushTime = 500 * time.Millisecond
)

// outboundConns tracks the connections of every listener, so that the broker's hooks
// can find a client's connection and the server can end them all at shutdown. It is
// safe for concurrent use.
type outboundConns struct {
	limits  OutboundLimits
	log     *slog.Logger
	slow    *prometheus.CounterVec // by queue
	mu      sync.Mutex
	closed  bool
	conns   map[connKey]*outboundConn
	writers sync.WaitGroup // one per connection until its writer has closed it
}

// connKey names a connection the way the broker's client knows it.
type connKey struct{ listener, remote string }

func newOutboundConns(limits OutboundLimits, log *slog.Logger) *outboundConns {
	o := &outboundConns{
		limits: limits,
		log:    log,
		slow: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shadowsync_localiot_slow_clients_disconnected_total",
			Help: "Clients localiot disconnected because their outbound queue was full, by the queue that filled (bytes or messages).",
		}, []string{"queue"}),
		conns: make(map[connKey]*outboundConn),
	}
	// Both series exist from the start, at zero.
	o.slow.WithLabelValues(queueBytes)
	o.slow.WithLabelValues(queueMessages)
	return o
}

// register adds the slow-client counter to reg; servers sharing a registry share
// the counter.
func (o *outboundConns) register(reg *prometheus.Registry) error {
	err := reg.Register(o.slow)
	var dup prometheus.AlreadyRegisteredError
	if errors.As(err, &dup) {
		if existing, ok := dup.ExistingCollector.(*prometheus.CounterVec); ok {
			o.slow = existing
			return nil
		}
	}
	return err
}

// listener wraps ln so that every connection it accepts is an outboundConn.
func (o *outboundConns) listener(id string, ln net.Listener) net.Listener {
	return &outboundListener{Listener: ln, id: id, conns: o}
}

// add wraps c and starts its writer; it returns net.ErrClosed, closing c, once the
// server is shutting down.
func (o *outboundConns) add(listener string, c net.Conn) (*outboundConn, error) {
	oc := &outboundConn{
		Conn:  c,
		key:   connKey{listener, c.RemoteAddr().String()},
		owner: o,
		limit: o.limits.Bytes,
		wake:  make(chan struct{}, 1),
	}
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		_ = c.Close()
		return nil, net.ErrClosed
	}
	o.conns[oc.key] = oc
	o.writers.Add(1)
	o.mu.Unlock()
	go oc.writeLoop()
	return oc, nil
}

// lookup returns the connection of a broker client, nil for the inline client or a
// connection already ended.
func (o *outboundConns) lookup(cl *mqtt.Client) *outboundConn {
	if cl.Net.Inline {
		return nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.conns[connKey{cl.Net.Listener, cl.Net.Remote}]
}

// remove forgets oc once its writer has ended.
func (o *outboundConns) remove(oc *outboundConn) {
	o.mu.Lock()
	if o.conns[oc.key] == oc {
		delete(o.conns, oc.key)
	}
	o.mu.Unlock()
	o.writers.Done()
}

// relabel files oc under the listener ID whose clients it serves, when that is decided
// after the connection was accepted: on a port that serves MQTT and WebSocket, by the
// protocol the TLS handshake negotiated. It must be called before the broker learns of
// the connection.
func (o *outboundConns) relabel(oc *outboundConn, listener string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.conns[oc.key] == oc {
		delete(o.conns, oc.key)
		oc.key.listener = listener
		o.conns[oc.key] = oc
		return
	}
	oc.key.listener = listener
}

// closeAll ends every connection and waits for their writers: the last step of
// shutdown, once the broker has closed. Connections still flushing get
// shutdownFlushTime to finish, then are cut.
func (o *outboundConns) closeAll() {
	o.mu.Lock()
	o.closed = true
	o.mu.Unlock()
	flushed := make(chan struct{})
	go func() {
		o.writers.Wait()
		close(flushed)
	}()
	select {
	case <-flushed:
		return
	case <-time.After(shutdownFlushTime):
	}
	o.mu.Lock()
	all := make([]*outboundConn, 0, len(o.conns))
	for _, oc := range o.conns {
		all = append(all, oc)
	}
	o.mu.Unlock()
	for _, oc := range all {
		oc.abort(net.ErrClosed)
	}
	<-flushed
}

// slowClient counts and logs, once per connection, a client disconnected because
// its queue filled up.
func (o *outboundConns) slowClient(oc *outboundConn, queue string, queued int) {
	o.slow.WithLabelValues(queue).Inc()
	o.log.Warn("slow client disconnected: its outbound queue is full",
		"client", oc.clientID(), "listener", oc.key.listener, "remote", oc.key.remote,
		"queue", queue, "queued_bytes", queued, "max_bytes", o.limits.Bytes, "max_messages", o.limits.Messages)
}

// outboundListener is a net.Listener whose connections are outboundConns.
type outboundListener struct {
	net.Listener
	id    string
	conns *outboundConns
}

// Accept waits for the next connection and wraps it.
func (l *outboundListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	oc, err := l.conns.add(l.id, c)
	if err != nil {
		return nil, fmt.Errorf("accept: %w", err)
	}
	return oc, nil
}

// outboundConn is an accepted connection whose Write never waits for the peer: it
// appends to a queue in memory that a goroutine of its own (writeLoop) writes to the
// socket. A Write that would take the queue past its limit fails the connection:
// the socket is closed at once, the queue dropped, and the client counted as slow.
// Close lets the writer flush what is queued, for at most closeFlushTime, and
// returns at once. Reads and deadlines go to the socket, until the connection is
// closed or fails. It is safe for concurrent use.
type outboundConn struct {
	net.Conn // the accepted socket
	key      connKey
	owner    *outboundConns
	limit    int // bytes the queue may hold; one larger write is taken into an empty queue

	mu        sync.Mutex
	pending   []byte // written, not yet taken by the writer
	writing   int    // bytes the writer is writing to the socket
	spare     []byte // the writer's last batch, reused for the next pending
	exempt    bool   // writes are not bounded: the broker is resending a resumed session
	exempted  int    // bytes written while exempt and not yet taken by the socket
	closing   bool   // Close was called: flush, then close
	halfClose bool   // CloseWrite was called: flush, then shut the socket's write side
	err       error  // set once the connection failed or closed; later writes return it
	client    string // the MQTT client ID, once the broker knows it
	wake      chan struct{}
}

// maxSpare is the largest batch buffer a connection keeps for reuse: a burst's larger
// buffer is left to the garbage collector, so idle connections hold little.
const maxSpare = 4 << 10

// Write queues p for the writer. It never blocks on the network.
func (c *outboundConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if c.err != nil || c.closing || c.halfClose {
		err := c.err
		c.mu.Unlock()
		if err == nil {
			err = net.ErrClosed
		}
		return 0, err
	}
	// What was written while exempt leaves first and is not held against the bound.
	queued := len(c.pending) + c.writing - c.exempted
	switch {
	case c.exempt:
		c.exempted += len(p)
	case queued > 0 && queued+len(p) > c.limit:
		queued += c.exempted
		c.failLocked(errSlowClient)
		c.mu.Unlock()
		c.owner.slowClient(c, queueBytes, queued)
		return 0, errSlowClient
	}
	if c.pending == nil {
		c.pending, c.spare = c.spare[:0], nil
	}
	c.pending = append(c.pending, p...)
	c.mu.Unlock()
	c.signal()
	return len(p), nil
}

// fail ends the connection of a client whose other queue, the broker's, is full.
func (c *outboundConn) fail(queue string) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	queued := len(c.pending) + c.writing
	c.failLocked(errSlowClient)
	c.mu.Unlock()
	c.owner.slowClient(c, queue, queued)
}

// abort ends the connection with err, dropping what is queued.
func (c *outboundConn) abort(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.failLocked(err)
	}
	c.mu.Unlock()
}

// failLocked records err, drops the queue and closes the socket, which ends a
// blocked write or read at once. c.mu is held.
func (c *outboundConn) failLocked(err error) {
	c.err = err
	c.pending, c.spare = nil, nil
	_ = c.Conn.Close()
	c.signal()
}

func (c *outboundConn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Read reads from the socket.
func (c *outboundConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	err, closing := c.err, c.closing
	c.mu.Unlock()
	if err != nil {
		return 0, err
	}
	if closing {
		return 0, net.ErrClosed
	}
	return c.Conn.Read(p)
}

// Close stops reads at once and has the writer flush what is queued, then close the
// socket. It does not wait.
func (c *outboundConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil || c.closing {
		return nil
	}
	c.closing = true
	now := time.Now()
	_ = c.Conn.SetReadDeadline(now)
	_ = c.Conn.SetWriteDeadline(now.Add(closeFlushTime))
	c.signal()
	return nil
}

// CloseWrite shuts the socket's write side once what is queued is written, as
// net.TCPConn's does; net/http uses it to end a response.
func (c *outboundConn) CloseWrite() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil || c.closing {
		return net.ErrClosed
	}
	c.halfClose = true
	c.signal()
	return nil
}

// SetDeadline sets the socket's read deadline while the connection is open (see
// SetWriteDeadline for writes); once it is closing, the flush deadline stands.
func (c *outboundConn) SetDeadline(t time.Time) error {
	return c.SetReadDeadline(t)
}

// SetReadDeadline sets the socket's read deadline while the connection is open.
func (c *outboundConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil || c.closing {
		return nil
	}
	return c.Conn.SetReadDeadline(t)
}

// SetWriteDeadline does nothing: a Write here never waits for the socket, so there is
// nothing for a caller's deadline to bound, and passing it on would cut the writer's
// flush of what was already queued (crypto/tls sets the write deadline to now right
// after queuing its close_notify alert, which dropped a refused client's CONNACK).
// A client that does not read is bounded by the queue's limits instead, and Close by
// closeFlushTime.
func (c *outboundConn) SetWriteDeadline(time.Time) error { return nil }

// queued returns how many bytes wait for the socket.
func (c *outboundConn) queued() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending) + c.writing
}

// resuming exempts the writes that follow from the bound, until established: the
// broker resends a resumed session's unacknowledged QoS 1 messages all at once,
// which may be more than the bound, and must not cost the client its connection.
func (c *outboundConn) resuming() {
	c.mu.Lock()
	c.exempt = true
	c.mu.Unlock()
}

// established ends the exemption and records the client's ID for the log.
func (c *outboundConn) established(id string) {
	c.mu.Lock()
	c.exempt = false
	c.client = id
	c.mu.Unlock()
}

func (c *outboundConn) clientID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.client
}

// writeLoop writes queued bytes to the socket, batch by batch, until the connection
// fails, or is closed and flushed; then it closes the socket.
func (c *outboundConn) writeLoop() {
	defer c.owner.remove(c)
	defer c.Conn.Close()
	shut := false // the socket's write side is shut (CloseWrite)
	for {
		c.mu.Lock()
		if c.err != nil {
			c.mu.Unlock()
			return
		}
		batch := c.pending
		if len(batch) == 0 {
			closing, half := c.closing, c.halfClose
			c.mu.Unlock()
			if closing {
				return
			}
			if half && !shut {
				shut = true
				if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
					_ = cw.CloseWrite()
				}
			}
			<-c.wake
			continue
		}
		c.pending, c.writing = nil, len(batch)
		c.mu.Unlock()

		_, err := c.Conn.Write(batch)

		c.mu.Lock()
		c.writing = 0
		if err != nil {
			if c.err == nil {
				c.err = err
				c.pending = nil
			}
			c.mu.Unlock()
			return
		}
		c.exempted = max(0, c.exempted-len(batch))
		if cap(batch) <= maxSpare && c.pending == nil {
			c.spare = batch[:0]
		}
		c.mu.Unlock()
	}
}

// outboundHook is the broker hook that ties each client to its connection: it
// exempts what the broker sends while it sets up the client's session (the CONNACK
// and the resent messages of a resumed session) from the bound, names the connection
// after the client, and fails the connection of a client whose queue in the broker
// (Capabilities.MaximumClientWritesPending) is full, where the broker itself would
// only drop the message. It provides no authorisation methods.
type outboundHook struct {
	mqtt.HookBase
	conns *outboundConns
}

func (*outboundHook) ID() string { return "localiot-outbound" }

func (*outboundHook) Provides(b byte) bool {
	return b == mqtt.OnSessionEstablish || b == mqtt.OnSessionEstablished || b == mqtt.OnPublishDropped
}

func (h *outboundHook) OnSessionEstablish(cl *mqtt.Client, _ packets.Packet) {
	if oc := h.conns.lookup(cl); oc != nil {
		oc.resuming()
	}
}

func (h *outboundHook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	if oc := h.conns.lookup(cl); oc != nil {
		oc.established(cl.ID)
	}
}

func (h *outboundHook) OnPublishDropped(cl *mqtt.Client, _ packets.Packet) {
	if oc := h.conns.lookup(cl); oc != nil {
		oc.fail(queueMessages)
	}
}
