package faultproxy

import (
	"bufio"
	"errors"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// echoServer echoes lines on 127.0.0.1 until the test ends.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := c.Write([]byte(line)); err != nil {
						return
					}
				}
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

func startProxy(t *testing.T) *Proxy {
	t.Helper()
	p, err := Start(echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func dial(t *testing.T, p *Proxy) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, bufio.NewReader(c)
}

// roundTrip sends a line and reads the echo with a deadline.
func roundTrip(c net.Conn, r *bufio.Reader, wait time.Duration) (string, error) {
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return "", err
	}
	_ = c.SetReadDeadline(time.Now().Add(wait))
	return r.ReadString('\n')
}

func TestPassCutRestore(t *testing.T) {
	p := startProxy(t)
	c, r := dial(t, p)
	if got, err := roundTrip(c, r, 5*time.Second); err != nil || got != "ping\n" {
		t.Fatalf("pass: got %q, %v", got, err)
	}

	p.Cut()
	if _, err := roundTrip(c, r, 5*time.Second); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("after Cut: err = %v, want the connection closed", err)
	}
	// New connections are closed at once.
	c2, r2 := dial(t, p)
	if _, err := roundTrip(c2, r2, 5*time.Second); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("new connection while cut: err = %v, want closed", err)
	}

	p.Restore()
	c3, r3 := dial(t, p)
	if got, err := roundTrip(c3, r3, 5*time.Second); err != nil || got != "ping\n" {
		t.Fatalf("after Restore: got %q, %v", got, err)
	}
	if n := p.Accepted(); n != 3 {
		t.Errorf("Accepted = %d, want 3", n)
	}
}

func TestCutOnceKeepsPassing(t *testing.T) {
	p := startProxy(t)
	c, r := dial(t, p)
	if _, err := roundTrip(c, r, 5*time.Second); err != nil { // the link is set up
		t.Fatal(err)
	}
	p.CutOnce()
	if _, err := roundTrip(c, r, 5*time.Second); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("after CutOnce: err = %v, want closed", err)
	}
	c2, r2 := dial(t, p)
	if got, err := roundTrip(c2, r2, 5*time.Second); err != nil || got != "ping\n" {
		t.Fatalf("new connection after CutOnce: got %q, %v", got, err)
	}
}

func TestBlackHole(t *testing.T) {
	p := startProxy(t)
	c, r := dial(t, p)
	if _, err := roundTrip(c, r, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	p.BlackHole()
	// The write succeeds, the connection stays open, nothing comes back.
	if _, err := roundTrip(c, r, 200*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("black-holed: err = %v, want a read timeout", err)
	}
	c2, r2 := dial(t, p)
	if _, err := roundTrip(c2, r2, 200*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("new connection while black-holed: err = %v, want a read timeout", err)
	}
	if p.Mode() != BlackHole {
		t.Errorf("Mode = %v", p.Mode())
	}
	p.Restore()
	c3, r3 := dial(t, p)
	if got, err := roundTrip(c3, r3, 5*time.Second); err != nil || got != "ping\n" {
		t.Fatalf("after Restore: got %q, %v", got, err)
	}
}
