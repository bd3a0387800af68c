//go:build !linux

package quickack

import "net"

// Func returns nil: TCP_QUICKACK is Linux's (see quickack_linux.go).
func Func(net.Conn) func() { return nil }
