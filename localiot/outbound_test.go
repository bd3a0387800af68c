package localiot

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Writes to a peer that reads nothing return at once, until the queue would pass its
// bound; then the write fails, the connection with it, and the client is counted.
func TestOutboundConnNeverBlocks(t *testing.T) {
	conns := newOutboundConns(OutboundLimits{Messages: 1, Bytes: 1 << 20}, slog.New(slog.DiscardHandler))
	server, peer := net.Pipe() // a pipe's writes wait for its reader, which never reads
	defer peer.Close()
	oc, err := conns.add("test", server)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		chunk := make([]byte, 100<<10)
		for range 10 {
			if _, err := oc.Write(chunk); err != nil {
				done <- err
				return
			}
		}
		_, err := oc.Write(chunk) // the eleventh passes 1 MiB
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, errSlowClient) {
			t.Fatalf("write past the bound: %v, want errSlowClient", err)
		}
	case <-time.After(wait):
		t.Fatal("writes to a peer that reads nothing blocked")
	}
	if _, err := oc.Write([]byte("x")); !errors.Is(err, errSlowClient) {
		t.Errorf("write after the failure: %v, want errSlowClient", err)
	}
	_ = peer.SetReadDeadline(time.Now().Add(wait))
	if _, err := io.Copy(io.Discard, peer); err != nil {
		t.Errorf("peer: %v, want the connection closed", err)
	}
	conns.closeAll()
	reg := prometheus.NewRegistry()
	reg.MustRegister(conns.slow)
	if got := slowCount(t, reg, queueBytes); got != 1 {
		t.Errorf("slow clients counted = %v, want 1", got)
	}
}

// Close returns at once and leaves the writer to flush what was queued before it:
// a CONNACK refusing a client, say, reaches it before the connection ends.
func TestOutboundConnFlushesOnClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	conns := newOutboundConns(OutboundLimits{Messages: 1, Bytes: 1 << 20}, slog.New(slog.DiscardHandler))
	wrapped := conns.listener("test", ln)
	peer, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	server, err := wrapped.Accept()
	if err != nil {
		t.Fatal(err)
	}
	want := bytes.Repeat([]byte("refused "), 64<<10) // more than one write of the socket
	if _, err := server.Write(want); err != nil {
		t.Fatal(err)
	}
	if err := server.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := server.Write([]byte("late")); err == nil {
		t.Error("write after Close succeeded")
	}
	_ = peer.SetReadDeadline(time.Now().Add(wait))
	got, err := io.ReadAll(peer)
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("peer read %d bytes, error %v; want the %d bytes written before Close, then EOF", len(got), err, len(want))
	}
	conns.closeAll()
}

// Two servers given one registry count into the same counter.
func TestServersShareRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	for range 2 {
		if _, err := New(Options{Registry: reg}); err != nil {
			t.Fatalf("New with a shared registry: %v", err)
		}
	}
}
