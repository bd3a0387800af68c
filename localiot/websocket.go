package localiot

import (
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// wsListener is a mochi listener serving MQTT over WebSocket at /mqtt, admitting an
// upgrade only when its URL carries a valid SigV4 presigned query. mochi's own
// WebSocket listener has no hook to authenticate the HTTP upgrade, hence this one.
type wsListener struct {
	id       string
	ln       net.Listener // bound before the broker starts; wrapped in TLS when configured
	srv      *http.Server
	verifier *sigV4Verifier
	upgrader websocket.Upgrader
	log      *slog.Logger
	conns    connTracker // upgraded connections, which http.Server no longer tracks
	// dropClients, when set, replaces the CloseFn mochi passes to Close (see
	// connTracker.end).
	dropClients listeners.CloseFn

	mu        sync.Mutex // guards establish
	establish listeners.EstablishFn
}

var _ listeners.Listener = (*wsListener)(nil)

func newWSListener(id string, ln net.Listener, opts *WebSocketListener, drop listeners.CloseFn) *wsListener {
	if opts.Certificate != nil {
		ln = tls.NewListener(ln, &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{*opts.Certificate}, NextProtos: []string{"http/1.1"}})
	}
	l := &wsListener{
		id:          id,
		ln:          ln,
		dropClients: drop,
		verifier:    newSigV4Verifier(opts),
		upgrader: websocket.Upgrader{
			HandshakeTimeout: connectTimeout,
			Subprotocols:     []string{"mqtt", "mqttv3.1"},
			// SigV4 authenticates the request, so browsers on any origin may connect.
			CheckOrigin: func(*http.Request) bool { return true },
		},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+websocketPath, l.serveHTTP)
	l.srv = &http.Server{Handler: mux, ReadHeaderTimeout: connectTimeout}
	return l
}

// ID returns the listener's ID.
func (l *wsListener) ID() string { return l.id }

// Address returns the bound address.
func (l *wsListener) Address() string { return l.ln.Addr().String() }

// Protocol returns "ws".
func (l *wsListener) Protocol() string { return "ws" }

// Init records the broker's logger; the socket is already bound.
func (l *wsListener) Init(log *slog.Logger) error {
	l.log = log
	l.srv.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelDebug)
	return nil
}

// Serve serves HTTP until Close, handing each admitted WebSocket to establish.
func (l *wsListener) Serve(establish listeners.EstablishFn) {
	l.mu.Lock()
	l.establish = establish
	l.mu.Unlock()
	if err := l.srv.Serve(l.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		l.log.Error("websocket listener stopped", "error", err)
	}
}

// Close stops the HTTP server, has the broker disconnect this listener's clients, and
// closes every upgraded connection still open, returning once their goroutines have
// ended.
func (l *wsListener) Close(closeClients listeners.CloseFn) {
	l.conns.close()
	_ = l.srv.Close()
	_ = l.ln.Close() // in case Serve never ran, when srv does not know ln yet
	l.conns.end(l.id, closeClients, l.dropClients)
}

func (l *wsListener) serveHTTP(w http.ResponseWriter, r *http.Request) {
	cred, err := l.verifier.verify(r)
	if err != nil {
		l.log.Info("websocket refused", "remote", r.RemoteAddr, "reason", err)
		http.Error(w, "Forbidden", http.StatusForbidden)
		return
	}
	c, err := l.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered with an HTTP error
	}
	raw := c.UnderlyingConn()
	if !l.conns.add(raw) {
		_ = c.Close()
		return
	}
	defer l.conns.done(raw)
	defer c.Close()

	who := principal{operator: true}
	if cred.Thing != "" {
		who = principal{thing: cred.Thing}
	}
	conn := &wsConn{Conn: raw, ws: c, who: who}
	// The broker replaces this deadline with the keep-alive once CONNECT is read.
	_ = conn.SetDeadline(time.Now().Add(connectTimeout))
	l.mu.Lock()
	establish := l.establish
	l.mu.Unlock()
	if err := establish(l.id, conn); err != nil {
		l.log.Debug("client ended", "remote", r.RemoteAddr, "access_key_id", cred.AccessKeyID, "error", err)
	}
}

// errTextFrame ends a WebSocket connection that sends a text frame: MQTT travels in
// binary frames only.
var errTextFrame = errors.New("websocket: text frame")

// wsConn presents a WebSocket as the byte stream the broker reads MQTT from: reads
// run across binary messages, each write is one binary message. It carries the
// principal the upgrade authenticated.
type wsConn struct {
	net.Conn // the underlying connection, for addresses

	ws  *websocket.Conn
	who principal

	r  io.Reader  // the current message; nil between messages. Only the broker's reader uses it.
	wm sync.Mutex // one writer at a time, as gorilla requires; guards the write deadline too
}

// Read reads MQTT bytes from the current binary message, moving to the next one as
// each ends.
func (c *wsConn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			typ, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			if typ != websocket.BinaryMessage {
				return 0, errTextFrame
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if errors.Is(err, io.EOF) {
			c.r = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

// Write sends p as one binary message.
func (c *wsConn) Write(p []byte) (int, error) {
	c.wm.Lock()
	defer c.wm.Unlock()
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// SetDeadline sets the read and write deadlines.
func (c *wsConn) SetDeadline(t time.Time) error {
	return errors.Join(c.SetReadDeadline(t), c.SetWriteDeadline(t))
}

// SetReadDeadline sets the read deadline.
func (c *wsConn) SetReadDeadline(t time.Time) error { return c.ws.SetReadDeadline(t) }

// SetWriteDeadline sets the write deadline, which gorilla keeps unguarded: it must not
// change during a write.
func (c *wsConn) SetWriteDeadline(t time.Time) error {
	c.wm.Lock()
	defer c.wm.Unlock()
	return c.ws.SetWriteDeadline(t)
}

// Close closes the connection.
func (c *wsConn) Close() error { return c.ws.Close() }
