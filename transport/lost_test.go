package transport_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/shadowsync/shadowsync/transport"
)

// An operation whose socket fails before the session's loss is signalled counts as
// cut short by the loss (a publish is then queued, or fails with ErrOffline), not as
// the server's answer.
func TestConnectionGoneClassifiesSocketFailures(t *testing.T) {
	for _, tc := range []struct {
		err  error
		gone bool
	}{
		{paho.ErrNotConnected, true},
		{&net.OpError{Op: "write", Net: "tcp", Err: syscall.EPIPE}, true},
		{fmt.Errorf("write: %w", net.ErrClosed), true},
		{io.EOF, true},
		{errors.New("connection lost before Publish completed"), true},
		{transport.ErrSubscribeRefused, false},
		{errors.New("packet too large"), false},
	} {
		if got := transport.ConnectionGone(tc.err); got != tc.gone {
			t.Errorf("connectionGone(%v) = %v, want %v", tc.err, got, tc.gone)
		}
	}
}

// The buffered reads return every byte the server sent, in order, however small the
// reads, and then the socket's error: EOF before the session is up, ErrClosedByServer
// after (paho arms the idle rule by clearing the deadline).
func TestIdleConnBuffersReadsWithoutLosingBytes(t *testing.T) {
	for _, armed := range []bool{false, true} {
		client, server := net.Pipe()
		c := transport.NewIdleConn(client, wait, wait)
		if armed {
			if err := c.SetDeadline(time.Time{}); err != nil {
				t.Fatal(err)
			}
		}
		go func() {
			for _, chunk := range []string{"he", "llo, ", "wor", "ld"} {
				if _, err := server.Write([]byte(chunk)); err != nil {
					return
				}
			}
			server.Close()
		}()
		var got []byte
		var err error
		for range 100 {
			var b [3]byte
			var n int
			n, err = c.Read(b[:1+len(got)%3])
			got = append(got, b[:n]...)
			if err != nil {
				break
			}
		}
		if string(got) != "hello, world" {
			t.Errorf("armed=%v: read %q, want %q", armed, got, "hello, world")
		}
		switch {
		case !armed && !errors.Is(err, io.EOF):
			t.Errorf("before the session: error %v, want io.EOF", err)
		case armed && !errors.Is(err, transport.ErrClosedByServer):
			t.Errorf("during the session: error %v, want ErrClosedByServer", err)
		}
		c.Close()
	}
}

// Batched writes reach the peer complete and in order, whoever writes; Close writes
// out what is buffered (a DISCONNECT) before closing; after a socket error, writes
// fail instead of vanishing.
func TestIdleConnBatchesWritesWithoutLosingBytes(t *testing.T) {
	client, server := net.Pipe()
	c := transport.NewIdleConn(client, wait, wait)
	received := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(server)
		received <- b
	}()
	var want []byte
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := range 4 { // paho's writer and its keep-alive write concurrently
		wg.Go(func() {
			for i := range 500 {
				p := []byte(fmt.Sprintf("<%d:%d>", g, i))
				mu.Lock() // the order of whole writes is the order they return in
				if _, err := c.Write(p); err != nil {
					mu.Unlock()
					t.Errorf("Write: %v", err)
					return
				}
				want = append(want, p...)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if _, err := c.Write([]byte("DISCONNECT")); err != nil {
		t.Fatal(err)
	}
	want = append(want, "DISCONNECT"...)
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case got := <-received:
		if string(got) != string(want) {
			t.Fatalf("peer received %d bytes, want %d (first difference at %d)", len(got), len(want), firstDiff(got, want))
		}
	case <-time.After(wait):
		t.Fatal("the peer never saw the connection close")
	}
	if _, err := c.Write([]byte("late")); err == nil {
		t.Error("Write after Close succeeded")
	}

	// A peer that is gone: writes start failing once the flusher has seen it.
	client, server = net.Pipe()
	c = transport.NewIdleConn(client, wait, wait)
	server.Close()
	if err := writeFails(c); err == nil {
		t.Errorf("writes to a closed peer kept succeeding for %v", wait)
	}
	c.Close()
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// A peer that stops reading is found out within the write timeout even though
// writes only buffer: the flusher's write times out, the connection is closed, and
// both later writes and the reader fail instead of hanging.
func TestIdleConnStalledPeerFailsWithinWriteTimeout(t *testing.T) {
	client, server := net.Pipe() // nothing ever reads server
	defer server.Close()
	c := transport.NewIdleConn(client, wait, 100*time.Millisecond)
	defer c.Close()
	if _, err := c.Write([]byte("PUBLISH")); err != nil {
		t.Fatalf("first write: %v", err)
	}
	readErr := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1))
		readErr <- err
	}()
	select {
	case err := <-readErr:
		if err == nil {
			t.Error("the reader got data from a peer that sent none")
		}
	case <-time.After(wait):
		t.Fatal("the reader was not woken when the write timed out")
	}
	if err := writeFails(c); err == nil {
		t.Errorf("writes kept succeeding for %v after the write timed out", wait)
	}
}

// writeFails writes a byte to c every 5 ms until a write fails, for at most wait, and
// returns that error (nil when every write succeeded). Writes only buffer, so a
// failure of the connection shows in a later write, once the flusher has met it.
func writeFails(c net.Conn) error {
	for deadline := time.Now().Add(wait); time.Now().Before(deadline); {
		if _, err := c.Write([]byte("x")); err != nil {
			return err
		}
		time.Sleep(5 * time.Millisecond) // the polling interval of a bounded wait
	}
	return nil
}

// The write deadline moves with the writes: a connection written to for several
// write timeouts while its peer reads stays up, and once the peer stops reading the
// next write still times out and ends it.
func TestIdleConnWriteDeadlineFollowsTheWrites(t *testing.T) {
	const timeout = 100 * time.Millisecond
	client, server := net.Pipe()
	defer server.Close()
	c := transport.NewIdleConn(client, wait, timeout)
	defer c.Close()
	stopReading := make(chan struct{})
	reader := make(chan struct{})
	go func() {
		defer close(reader)
		buf := make([]byte, 64)
		for {
			select {
			case <-stopReading:
				return
			default:
			}
			_ = server.SetReadDeadline(time.Now().Add(5 * time.Millisecond))
			if _, err := server.Read(buf); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
				return
			}
		}
	}()
	// Healthy for 5 write timeouts: every write is read.
	for end := time.Now().Add(5 * timeout); time.Now().Before(end); {
		if _, err := c.Write([]byte("x")); err != nil {
			t.Fatalf("write failed while the peer reads: %v", err)
		}
		time.Sleep(2 * time.Millisecond) // the pace of the writes
	}
	close(stopReading)
	<-reader
	if err := writeFails(c); err == nil {
		t.Errorf("writes kept succeeding for %v after the peer stopped reading", wait)
	}
}
