package transport

import (
	"net"
	"sync"
	"time"
)

// Batched writes. paho writes every packet with a write(2) of its own, and a busy
// shadow client acknowledges several QoS 1 messages per shadow update: one syscall
// per 4-byte PUBACK was the largest single cost left on the connection. Writes now
// go to a buffer that a flusher goroutine writes out; packets written while a flush
// is in its syscall leave together in the next one. A Write returns once its bytes
// are buffered; a socket error is returned by the next Write (paho's reader notices
// a dead connection anyway). Close writes out what is buffered (a DISCONNECT) before
// closing the socket.

const (
	// maxBuffered bounds the bytes waiting to be written; a Write beyond it waits
	// for the flusher, as a write to a full socket would.
	maxBuffered = 1 << 20
	// keptBuffer is the largest buffer kept for reuse between flushes.
	keptBuffer = 64 << 10
	// closeFlushWait bounds how long Close waits for buffered bytes to be written.
	closeFlushWait = 2 * time.Second
)

// batchWriter buffers writes to conn. It is safe for concurrent use (paho's writer
// and its keep-alive both write). It is the only writer of conn, and bounds each of
// its writes by timeout, giving each at least half of it (see flush); paho's own
// write deadline would be set and cleared around a Write that only buffers. A write
// that times out or fails closes conn, so that the reader, and with it paho, notice
// the dead connection at once.
type batchWriter struct {
	conn    net.Conn
	timeout time.Duration // bound on each write to conn; 0 means none

	mu       sync.Mutex
	cond     sync.Cond // on mu: bytes to write, room in buf, or the flusher gone
	buf      []byte    // bytes waiting for the flusher
	spare    []byte    // the flusher's previous buffer, reused
	err      error     // the socket's write error; every later Write returns it
	closed   bool      // Close was called: the flusher writes what is left and stops
	flushing bool      // the flusher goroutine is running
	done     chan struct{}
}

func newBatchWriter(conn net.Conn, timeout time.Duration) *batchWriter {
	w := &batchWriter{conn: conn, timeout: timeout, done: make(chan struct{})}
	w.cond.L = &w.mu
	return w
}

// Write buffers p for the flusher.
func (w *batchWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.err == nil && !w.closed && len(w.buf) > 0 && len(w.buf)+len(p) > maxBuffered {
		w.cond.Wait()
	}
	switch {
	case w.err != nil:
		return 0, w.err
	case w.closed:
		return 0, net.ErrClosed
	}
	w.buf = append(w.buf, p...)
	if !w.flushing {
		w.flushing = true
		go w.flush()
	}
	w.cond.Broadcast()
	return len(p), nil
}

// flush writes the buffer out until Close has been called and it is empty, or the
// socket fails.
func (w *batchWriter) flush() {
	defer close(w.done)
	var deadline time.Time // the write deadline set on conn
	w.mu.Lock()
	defer w.mu.Unlock()
	for {
		for len(w.buf) == 0 && !w.closed {
			w.cond.Wait()
		}
		if len(w.buf) == 0 {
			return // closed, and everything is written
		}
		out := w.buf
		w.buf = w.spare[:0]
		w.mu.Unlock()
		if w.timeout > 0 {
			// Moving the deadline is a timer update in the runtime: done once per
			// half timeout rather than per flush, every write still has at least half
			// the timeout, and at most all of it, to finish.
			if now := time.Now(); now.Add(w.timeout / 2).After(deadline) {
				deadline = now.Add(w.timeout)
				_ = w.conn.SetWriteDeadline(deadline)
			}
		}
		_, err := w.conn.Write(out)
		w.mu.Lock()
		if cap(out) <= keptBuffer {
			w.spare = out[:0] // reused; a burst's large buffer is left to the GC
		} else {
			w.spare = nil
		}
		w.cond.Broadcast() // room in buf for waiting writers
		if err != nil {
			// A stalled or broken socket: end the connection now, once the reader can
			// learn why (writeErr).
			w.err = err
			w.buf = nil
			w.mu.Unlock()
			_ = w.conn.Close()
			w.mu.Lock()
			return
		}
	}
}

// writeErr returns the error of the write that failed, or nil.
func (w *batchWriter) writeErr() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Close writes out what is buffered, within closeFlushWait, then closes conn.
func (w *batchWriter) Close() error {
	w.mu.Lock()
	w.closed = true
	flushing := w.flushing
	w.cond.Broadcast()
	w.mu.Unlock()
	if flushing {
		t := time.NewTimer(closeFlushWait)
		select {
		case <-w.done:
		case <-t.C: // a peer that reads nothing: closing the socket ends the write
		}
		t.Stop()
	}
	return w.conn.Close()
}
