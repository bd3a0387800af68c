package quickack

import (
	"io"
	"net"
	"syscall"
	"testing"
)

// quickAckOn reads the socket's TCP_QUICKACK flag: whether the kernel is in
// quick-acknowledgement mode for it.
func quickAckOn(t *testing.T, c *net.TCPConn) bool {
	t.Helper()
	raw, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var gerr error
	if err := raw.Control(func(fd uintptr) {
		v, gerr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK)
	}); err != nil {
		t.Fatal(err)
	}
	if gerr != nil {
		t.Fatal(gerr)
	}
	return v != 0
}

// pair returns both ends of a TCP connection on 127.0.0.1.
func pair(t *testing.T) (client, server *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-accepted
	if s == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

// A read through Wrap leaves the socket in quick-acknowledgement mode, so the
// kernel acknowledges the next data at once; the flag is cleared by the kernel, which is
// why it is set after every read.
func TestWrapSetsQuickAckAfterEachRead(t *testing.T) {
	client, server := pair(t)
	conn := Wrap(client)
	if _, ok := conn.(*quickConn); !ok {
		t.Fatalf("Wrap of a TCP connection returned %T, want the quick-ack wrapper", conn)
	}
	buf := make([]byte, 4)
	for i := range 3 {
		// Clear the flag, as the kernel does when it leaves quick-ack mode.
		raw, _ := client.SyscallConn()
		_ = raw.Control(func(fd uintptr) {
			_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 0)
		})
		if quickAckOn(t, client) {
			t.Fatal("TCP_QUICKACK still set after clearing it")
		}
		if _, err := server.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(conn, buf); err != nil {
			t.Fatal(err)
		}
		if !quickAckOn(t, client) {
			t.Fatalf("read %d: TCP_QUICKACK not set after a read that returned data", i)
		}
	}
}

// Wrap leaves a connection that is not TCP as it is.
func TestWrapLeavesOtherConnections(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if got := Wrap(a); got != a {
		t.Fatalf("Wrap(net.Pipe()) = %T, want the pipe itself", got)
	}
	if Func(a) != nil {
		t.Fatal("Func of a pipe is not nil")
	}
}
