package transport

// Test hooks for the external test package (transport_test), which can import
// localiot without an import cycle.

import (
	"context"
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// SetClock replaces the connection loop's clock; call it before Start.
func SetClock(c *Conn, clk interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}) {
	c.clock = clk
}

// NegotiatedALPN dials c's endpoint once and returns the TLS protocol negotiated.
func NegotiatedALPN(ctx context.Context, c *Conn) (string, error) {
	d, err := c.dialer.dial(ctx)
	if err != nil {
		return "", err
	}
	defer d.conn.Close()
	tc, ok := d.conn.Conn.(*tls.Conn)
	if !ok {
		return "", nil
	}
	return tc.ConnectionState().NegotiatedProtocol, nil
}

// FilterCount returns how many topic filters c holds.
func FilterCount(c *Conn) int { return c.router.count() }

// ClearAWSEnv removes every variable the standard chain reads, for this test.
func ClearAWSEnv(t *testing.T) {
	t.Helper()
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
		"AWS_DEFAULT_PROFILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "AWS_ACCESS_KEY", "AWS_SECRET_KEY",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
}

// WriteSharedCredentials writes ~/.aws/credentials under home with one profile.
func WriteSharedCredentials(t *testing.T, home, profile, id, secret string) {
	t.Helper()
	dir := filepath.Join(home, ".aws")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	body := "[" + profile + "]\naws_access_key_id = " + id + "\naws_secret_access_key = " + secret + "\n"
	if err := os.WriteFile(filepath.Join(dir, "credentials"), []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

// ConnectionGone exposes the classification of paho token errors.
var ConnectionGone = connectionGone

// NewIdleConn wraps c as Dial does, with the given idle limit and write timeout.
func NewIdleConn(c net.Conn, idle, writeTimeout time.Duration) net.Conn {
	return newIdleConn(c, idle, writeTimeout, "test", nil)
}
