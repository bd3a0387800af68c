package quickack

import (
	"net"
	"syscall"
)

// Func returns a function that makes the kernel acknowledge what arrived on conn at
// once instead of delaying the ACK (Linux TCP_QUICKACK, which the kernel clears again
// by itself, so it is to be called after every read that returned data), or nil when
// conn is not a TCP connection.
//
// Why: a broker that does not set TCP_NODELAY (mosquitto's default) holds a small
// packet back until its previous one is acknowledged (Nagle's algorithm). A client
// that receives a PUBACK and sends nothing back — a controller waiting for its
// report's documents message — then lets the kernel delay that acknowledgement by up
// to 40 ms, and the documents message waits behind it: measured on Debian's
// mosquitto, an echo fleet of 100 things did 0.18× the throughput of a bare client
// without this and 0.9× with it.
func Func(conn net.Conn) func() {
	tcp, ok := conn.(*net.TCPConn)
	if !ok {
		return nil
	}
	raw, err := tcp.SyscallConn()
	if err != nil {
		return nil
	}
	set := func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
	}
	return func() { _ = raw.Control(set) }
}
