// Package quickack makes the kernel acknowledge received TCP data at once on the
// connections of shadowsync's clients, so that a broker using Nagle's algorithm (one
// that does not set TCP_NODELAY, as mosquitto by default) does not hold their next
// message back for up to the 40 ms of a delayed acknowledgement. See Func.
package quickack

import "net"

// Wrap returns conn with every Read that returns data followed by Func's call, or
// conn itself when Func has nothing for it.
func Wrap(conn net.Conn) net.Conn {
	f := Func(conn)
	if f == nil {
		return conn
	}
	return &quickConn{Conn: conn, ack: f}
}

// quickConn is a connection whose reads are each followed by a quick acknowledgement.
type quickConn struct {
	net.Conn
	ack func()
}

func (c *quickConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.ack()
	}
	return n, err
}
