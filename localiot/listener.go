package localiot

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/mochi-mqtt/server/v2/listeners"
)

// netListener is a mochi listener serving MQTT over TCP, or over TLS when tlsConfig is
// set, from a socket bound before the broker starts (so its address is known at
// once). Unlike mochi's own TCP listener it bounds the TLS handshake and the wait for
// CONNECT, and on Close it closes every connection, including ones that never sent
// CONNECT, so shutdown cannot hang.
type netListener struct {
	id        string
	ln        net.Listener
	tlsConfig *tls.Config
	log       *slog.Logger
	refusals  *refusalLog // failed TLS handshakes
	conns     connTracker
	// dropClients, when set, replaces the CloseFn mochi passes to Close (see
	// connTracker.end).
	dropClients listeners.CloseFn
}

var _ listeners.Listener = (*netListener)(nil)

// ID returns the listener's ID.
func (l *netListener) ID() string { return l.id }

// Address returns the bound address.
func (l *netListener) Address() string { return l.ln.Addr().String() }

// Protocol returns "tls" or "tcp".
func (l *netListener) Protocol() string {
	if l.tlsConfig != nil {
		return "tls"
	}
	return "tcp"
}

// Init records the broker's logger; the socket is already bound.
func (l *netListener) Init(log *slog.Logger) error {
	l.log = log
	return nil
}

// Serve accepts connections until Close and hands each to establish.
func (l *netListener) Serve(establish listeners.EstablishFn) {
	acceptLoop(l.ln, &l.conns, l.log, func(conn net.Conn) { l.serveConn(conn, establish) })
}

// acceptLoop accepts connections from ln until it is closed, tracking each in conns
// and serving it on its own goroutine. It backs off on errors such as running out of
// file descriptors.
func acceptLoop(ln net.Listener, conns *connTracker, log *slog.Logger, serve func(net.Conn)) {
	var backoff time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			if conns.isClosed() || errors.Is(err, net.ErrClosed) {
				return
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			log.Warn("accept failed", "error", err, "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		if !conns.add(conn) {
			_ = conn.Close()
			return
		}
		go serve(conn)
	}
}

func (l *netListener) serveConn(raw net.Conn, establish listeners.EstablishFn) {
	defer l.conns.done(raw)
	defer raw.Close()
	// The broker replaces this deadline with the keep-alive once CONNECT is read.
	_ = raw.SetDeadline(time.Now().Add(connectTimeout))
	conn := raw
	if l.tlsConfig != nil {
		tc := tls.Server(raw, l.tlsConfig)
		if err := tc.HandshakeContext(context.Background()); err != nil {
			l.refusals.refused(l.id, tlsRefusalReason(err), raw.RemoteAddr().String(), err)
			return
		}
		conn = tc
	}
	if err := establish(l.id, conn); err != nil {
		l.log.Debug("client ended", "remote", raw.RemoteAddr().String(), "error", err)
	}
}

// Close stops accepting, has the broker disconnect this listener's clients, and
// closes every connection still open, returning once their goroutines have ended.
func (l *netListener) Close(closeClients listeners.CloseFn) {
	l.conns.close()
	_ = l.ln.Close()
	l.conns.end(l.id, closeClients, l.dropClients)
}

// connTracker knows a listener's open connections so that Close can end them all and
// the server can wait for their goroutines. It is safe for concurrent use.
type connTracker struct {
	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup // one per tracked connection until done
}

// add tracks c; it returns false, tracking nothing, once the tracker is closed.
func (t *connTracker) add(c net.Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	if t.conns == nil {
		t.conns = make(map[net.Conn]struct{})
	}
	t.conns[c] = struct{}{}
	t.wg.Add(1)
	return true
}

// done stops tracking c.
func (t *connTracker) done(c net.Conn) {
	t.mu.Lock()
	delete(t.conns, c)
	t.mu.Unlock()
	t.wg.Done()
}

func (t *connTracker) isClosed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closed
}

// close makes later adds fail.
func (t *connTracker) close() {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
}

// closeAll closes every tracked connection and makes later adds fail.
func (t *connTracker) closeAll() {
	t.mu.Lock()
	t.closed = true
	conns := make([]net.Conn, 0, len(t.conns))
	for c := range t.conns {
		conns = append(conns, c)
	}
	t.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}

// end finishes a listener's Close once it accepts no more: it disconnects the
// listener's clients through drop (Server.dropListenerClients, which stands in for
// mochi's closeClients; closeClients only if drop is nil), closes every connection
// still open and waits for their goroutines. Every establish call has then returned
// before mochi waits for its clients: one still starting would count itself in as
// mochi waits, which sync.WaitGroup forbids.
func (t *connTracker) end(id string, closeClients, drop listeners.CloseFn) {
	if drop != nil {
		closeClients = drop
	}
	closeClients(id)
	t.closeAll()
	t.wait()
}

// wait blocks until every tracked connection is done.
func (t *connTracker) wait() { t.wg.Wait() }
