package main

import (
	"context"
	"io"
	"net"
	"testing"
	"time"
)

// wait bounds every blocking step of the test.
const wait = 5 * time.Second

// Bytes cross the proxy in order, each direction delay later; a half-close is passed
// on, so a server that answers its client's end of stream and closes is seen to
// close; stopping the proxy ends everything.
func TestDelayProxy(t *testing.T) {
	const delay = 30 * time.Millisecond
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c) // echo until the client's end of stream, then close
			}()
		}
	}()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		serve(ctx, []net.Listener{ln}, []string{echo.Addr().String()}, delay)
		close(done)
	}()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(wait):
			t.Error("serve did not return after its context ended")
		}
	}()

	c, err := net.DialTimeout("tcp", ln.Addr().String(), wait)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(wait))
	start := time.Now()
	want := "first second"
	if _, err := io.WriteString(c, "first "); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(c, "second"); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("reading the echo: %v", err)
	}
	if rtt := time.Since(start); string(got) != want || rtt < 2*delay {
		t.Errorf("echo %q after %v; want %q after at least %v", got, rtt, want, 2*delay)
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if rest, err := io.ReadAll(c); err != nil || len(rest) != 0 {
		t.Errorf("after the half-close: read %q (%v), want the server's close", rest, err)
	}
}
