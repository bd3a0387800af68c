package testserver_test

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/shadowsync/shadowsync/internal/testserver"
	"github.com/shadowsync/shadowsync/localiot"
)

// Start returns a server that accepts connections; Stop ends it before the test
// does, and stopping it again (as the test's cleanup does) changes nothing.
func TestStartServesUntilStopped(t *testing.T) {
	srv := testserver.Start(t, localiot.Options{})
	addr := strings.TrimPrefix(srv.Endpoints().Plain, "mqtt://")
	c, err := net.DialTimeout("tcp", addr, testserver.Wait)
	if err != nil {
		t.Fatalf("dial the started server: %v", err)
	}
	c.Close()
	testserver.Stop(t, srv)
	testserver.Stop(t, srv)
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Errorf("%s still accepts connections after Stop", addr)
	}
}
