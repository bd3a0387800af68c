package transport

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

// idleConn enforces the keep-alive rule on the client side: once the MQTT session is
// up (paho clears the handshake deadline), every Read must see data within idle
// (1.5 × keep-alive), else the connection is dead — the rule AWS IoT applies to
// clients. Since paho sends PINGREQ after a keep-alive of silence, a live server
// always answers in time; a black-holed link is noticed at 1.5 × keep-alive at the
// latest. It also turns the server closing the connection into ErrClosedByServer.
//
// It also buffers reads (paho reads each packet's fixed header a byte at a time,
// which without a buffer is a read(2) per byte) and batches writes (batchWriter).
type idleConn struct {
	net.Conn
	idle     time.Duration
	clientID string
	armed    atomic.Bool
	out      *batchWriter
	quickAck func() // after each read that returned data (quickAcker); nil for none

	// The read buffer belongs to the one goroutine reading at a time (paho's
	// connect, then its reader): buf[r:w] is read from the socket and not yet
	// returned; err is the socket's error, returned once buf[r:w] is drained.
	buf  []byte
	r, w int
	err  error
}

func newIdleConn(conn net.Conn, idle, writeTimeout time.Duration, clientID string, quickAck func()) *idleConn {
	return &idleConn{Conn: conn, idle: idle, clientID: clientID, out: newBatchWriter(conn, writeTimeout), quickAck: quickAck}
}

// Write buffers p for the connection's flusher (batchWriter).
func (c *idleConn) Write(p []byte) (int, error) { return c.out.Write(p) }

// Close writes out what is buffered, then closes the connection.
func (c *idleConn) Close() error { return c.out.Close() }

// readBufSize is the read buffer's size: several small MQTT packets per read(2).
const readBufSize = 16 << 10

// Read returns buffered bytes when there are any; otherwise it makes one read from
// the socket, with the idle deadline once armed.
func (c *idleConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if c.r == c.w {
		if c.err != nil {
			err := c.err
			c.err = nil
			return 0, err
		}
		if len(p) >= readBufSize {
			return c.readSocket(p) // a large read gains nothing from the buffer
		}
		if c.buf == nil {
			c.buf = make([]byte, readBufSize)
		}
		n, err := c.readSocket(c.buf)
		c.r, c.w, c.err = 0, n, err
		if n == 0 {
			c.err = nil
			return 0, err
		}
	}
	n := copy(p, c.buf[c.r:c.w])
	c.r += n
	return n, nil
}

// readSocket is one read from the socket, with the idle deadline once armed.
func (c *idleConn) readSocket(p []byte) (int, error) {
	armed := c.armed.Load()
	if armed {
		_ = c.Conn.SetReadDeadline(time.Now().Add(c.idle))
	}
	n, err := c.Conn.Read(p)
	if n > 0 && c.quickAck != nil {
		c.quickAck()
	}
	if err != nil && errors.Is(err, net.ErrClosed) {
		if werr := c.out.writeErr(); werr != nil && !errors.Is(werr, net.ErrClosed) {
			// The flusher closed the socket because a write failed. paho ignores a read
			// error saying the connection was closed here (it takes it for its own
			// Disconnect) and would wait for the keep-alive to notice: report the write's
			// failure instead.
			if errors.Is(werr, syscall.EPIPE) || errors.Is(werr, syscall.ECONNRESET) {
				return n, fmt.Errorf("%w (writing: %v): the server may have restarted", ErrClosedByServer, werr)
			}
			return n, fmt.Errorf("transport: writing to the connection failed: %w", werr)
		}
	}
	if err != nil && armed {
		var ne net.Error
		switch {
		case errors.As(err, &ne) && ne.Timeout():
			err = fmt.Errorf("%w: nothing from the server for %v (1.5 × keep-alive)", ErrKeepAlive, c.idle)
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET):
			err = fmt.Errorf("%w (%v): the server may have restarted; if it keeps happening soon after each connect, another connection is using client ID %q or the client broke a policy or limit", ErrClosedByServer, err, c.clientID)
		}
	}
	return n, err
}

// SetDeadline passes t on as the read deadline; the zero time, which paho sets once
// CONNACK has arrived, arms the idle deadline.
//
// Write deadlines are the batch writer's (see batchWriter): paho's would bound only
// the buffering, and clearing them could lift the flusher's.
func (c *idleConn) SetDeadline(t time.Time) error {
	if t.IsZero() {
		c.armed.Store(true)
	}
	return c.Conn.SetReadDeadline(t)
}

// SetWriteDeadline does nothing: the batch writer bounds every write itself.
func (c *idleConn) SetWriteDeadline(time.Time) error { return nil }

// wsConn adapts a WebSocket to the byte stream paho reads and writes: MQTT packets go
// in binary messages and may span or share messages. Reads happen on one goroutine
// (paho's reader); writes are serialised here because paho's keep-alive and its
// writer may write at the same time, which gorilla does not allow.
type wsConn struct {
	ws *websocket.Conn
	r  io.Reader // current message, nil between messages

	wmu sync.Mutex
}

var _ net.Conn = (*wsConn)(nil)

// Read reads from the current binary message, moving on to the next as needed.
func (c *wsConn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			typ, r, err := c.ws.NextReader()
			if err != nil {
				var ce *websocket.CloseError
				if errors.As(err, &ce) {
					return 0, io.EOF
				}
				return 0, err
			}
			if typ != websocket.BinaryMessage {
				continue // MQTT travels in binary messages only
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
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close closes the underlying connection without a close handshake (MQTT's
// DISCONNECT has already said goodbye).
func (c *wsConn) Close() error { return c.ws.Close() }

// LocalAddr returns the local network address.
func (c *wsConn) LocalAddr() net.Addr { return c.ws.LocalAddr() }

// RemoteAddr returns the remote network address.
func (c *wsConn) RemoteAddr() net.Addr { return c.ws.RemoteAddr() }

// SetDeadline sets both deadlines.
func (c *wsConn) SetDeadline(t time.Time) error {
	return errors.Join(c.SetReadDeadline(t), c.SetWriteDeadline(t))
}

// SetReadDeadline sets the read deadline.
func (c *wsConn) SetReadDeadline(t time.Time) error { return c.ws.SetReadDeadline(t) }

// SetWriteDeadline sets the write deadline, under the write lock gorilla requires.
func (c *wsConn) SetWriteDeadline(t time.Time) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.ws.SetWriteDeadline(t)
}
