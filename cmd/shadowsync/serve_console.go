package main

import (
	"fmt"
	"io"

	"github.com/shadowsync/shadowsync/localiot"
)

// consoleListener configures serve's web console at addr ("" means none). Like
// --mqtt, it has no authentication, so addr must be a loopback address unless
// anyAddr (--console-insecure-any-address) is set, which prints a warning.
func consoleListener(addr string, anyAddr bool, stderr io.Writer) (*localiot.ConsoleListener, error) {
	if addr == "" {
		if anyAddr {
			return nil, fmt.Errorf("%w: --console-insecure-any-address needs --console", errUsage)
		}
		return nil, nil
	}
	if !isLoopbackAddr(addr) {
		if !anyAddr {
			return nil, fmt.Errorf("%w: --console %s is not a loopback address: the console has no authentication and can change every shadow; add --console-insecure-any-address to serve it there anyway", errUsage, addr)
		}
		fmt.Fprintf(stderr, "WARNING: --console %s is not a loopback address: anyone who can reach it can read and change every shadow, with no authentication\n", addr)
	}
	return &localiot.ConsoleListener{Addr: addr, InsecureAnyAddress: anyAddr}, nil
}
