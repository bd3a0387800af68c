package localiot

import (
	"errors"
	"net"
	"strings"
	"testing"
)

// The plain listener has no authentication and gives operator rights, so it binds
// loopback addresses only unless PlainListener.InsecureAnyAddress says otherwise.
func TestPlainListenerIsLoopbackOnly(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0", "192.0.2.1:1883", "example.com:1883"} {
		_, err := New(Options{Plain: &PlainListener{Addr: addr}})
		if !errors.Is(err, ErrInvalidOptions) || !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "InsecureAnyAddress") {
			t.Errorf("New with plain address %q: %v, want ErrInvalidOptions naming the address and InsecureAnyAddress", addr, err)
		}
	}
	for _, addr := range []string{"", "127.0.0.1:0", "127.0.0.2:0", "localhost:0"} {
		s := startServer(t, Options{Plain: &PlainListener{Addr: addr}})
		mustConnect(t, s.Endpoints().Plain, "c")
	}

	// Allowed explicitly, the listener binds every address and serves on loopback too.
	s := startServer(t, Options{Plain: &PlainListener{Addr: "0.0.0.0:0", InsecureAnyAddress: true}})
	_, port, err := net.SplitHostPort(strings.TrimPrefix(s.Endpoints().Plain, "mqtt://"))
	if err != nil {
		t.Fatal(err)
	}
	mustConnect(t, "mqtt://127.0.0.1:"+port, "c")
}
