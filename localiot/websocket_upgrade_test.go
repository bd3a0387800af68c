package localiot

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// wsTarget is a running WebSocket listener, ws:// or wss:// (with the generated
// server certificate), as a test reaches it.
type wsTarget struct {
	url     string      // the endpoint, ws://127.0.0.1:port/mqtt or wss://...
	addr    string      // 127.0.0.1:port
	tlsConf *tls.Config // trusts the generated CA; nil for ws://
}

// startWSTarget starts a server whose WebSocket listener (over TLS when secure)
// accepts wsOperator and wsThing; edit, when set, adjusts the options first.
func startWSTarget(t *testing.T, secure bool, edit func(*Options)) (*Server, wsTarget) {
	t.Helper()
	ws := &WebSocketListener{Credentials: []Credential{wsOperator, wsThing}}
	var conf *tls.Config
	if secure {
		certs, err := EnsureCerts("")
		if err != nil {
			t.Fatal(err)
		}
		ws.Certificate = &certs.Server
		conf = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: certs.Pool, ServerName: "127.0.0.1"}
	}
	opts := Options{WebSocket: ws}
	if edit != nil {
		edit(&opts)
	}
	s := startServer(t, opts)
	u := s.Endpoints().WebSocket
	return s, wsTarget{url: u, addr: strings.TrimSuffix(u[strings.Index(u, "//")+2:], websocketPath), tlsConf: conf}
}

func (w wsTarget) scheme() string {
	if w.tlsConf != nil {
		return "wss"
	}
	return "ws"
}

// dialTCP opens a TCP connection to the listener and nothing more.
func (w wsTarget) dialTCP(t *testing.T) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: wait}
	conn, err := d.DialContext(t.Context(), "tcp", w.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// dial opens a connection to the listener, completing the TLS handshake for wss.
func (w wsTarget) dial(t *testing.T) net.Conn {
	t.Helper()
	conn := w.dialTCP(t)
	if w.tlsConf == nil {
		return conn
	}
	tc := tls.Client(conn, w.tlsConf)
	_ = tc.SetDeadline(time.Now().Add(wait))
	if err := tc.HandshakeContext(t.Context()); err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	_ = tc.SetDeadline(time.Time{})
	return tc
}

// upgradeRequest is a raw HTTP upgrade request for the URL u (its path and query,
// and its host as Host), with the given header lines; "" ends the list.
func upgradeRequest(t *testing.T, u string, headers ...string) string {
	t.Helper()
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("GET " + pu.RequestURI() + " HTTP/1.1\r\nHost: " + pu.Host + "\r\n")
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

// wsHeaders are the header lines of a well-formed WebSocket upgrade (RFC 6455 §4.1)
// asking for sub-protocol mqtt.
var wsHeaders = []string{
	"Connection: Upgrade",
	"Upgrade: websocket",
	"Sec-WebSocket-Version: 13",
	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
	"Sec-WebSocket-Protocol: mqtt",
}

// waitClosed reads from conn until the server closes it and returns how long that
// took; it fails the test if the connection is still open after within.
func waitClosed(t *testing.T, r io.Reader, conn net.Conn, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	_ = conn.SetReadDeadline(start.Add(within))
	_, err := io.Copy(io.Discard, r)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open %v later", within)
	}
	return time.Since(start)
}

// A refused upgrade is answered and its connection closed at once: a client cannot
// hold connections open with requests that fail (AWS IoT closes them too).
func TestWebSocketRefusalClosesConnection(t *testing.T) {
	for _, secure := range []bool{false, true} {
		_, target := startWSTarget(t, secure, nil)
		good := presign(t, target.url, wsThing.AccessKeyID, wsThing.SecretAccessKey, "", time.Now(), 0)
		noKey := append([]string(nil), wsHeaders[:3]...)
		badKey := append(append([]string(nil), wsHeaders[:3]...), "Sec-WebSocket-Key: not base64!")
		tests := []struct {
			name    string
			request string
			status  int
		}{
			{"bad signature", upgradeRequest(t, flipSignature(good), wsHeaders...), http.StatusForbidden},
			{"no signature", upgradeRequest(t, target.url, wsHeaders...), http.StatusForbidden},
			{"not a websocket handshake", upgradeRequest(t, good, noKey...), http.StatusBadRequest},
			{"key not base64", upgradeRequest(t, good, badKey...), http.StatusBadRequest},
			{"another path", upgradeRequest(t, strings.Replace(good, websocketPath, "/other", 1), wsHeaders...), http.StatusNotFound},
			{"not GET", "POST" + strings.TrimPrefix(upgradeRequest(t, good, wsHeaders...), "GET"), http.StatusMethodNotAllowed},
		}
		for _, tt := range tests {
			t.Run(target.scheme()+" "+tt.name, func(t *testing.T) {
				conn := target.dial(t)
				_ = conn.SetDeadline(time.Now().Add(wait))
				if _, err := io.WriteString(conn, tt.request); err != nil {
					t.Fatal(err)
				}
				br := bufio.NewReader(conn)
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatalf("reading the response: %v", err)
				}
				if resp.StatusCode != tt.status {
					t.Errorf("status %d, want %d", resp.StatusCode, tt.status)
				}
				took := waitClosed(t, br, conn, 2*time.Second)
				t.Logf("closed %v after the %d response", took.Round(time.Microsecond), resp.StatusCode)
			})
		}
	}
}

// A client that opens a connection and never finishes its upgrade request is closed
// after WebSocketListener.UpgradeTimeout, counted from the connection's start: the TLS
// handshake and the request share one deadline.
func TestWebSocketUpgradeTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	const slack = 2 * time.Second
	for _, secure := range []bool{false, true} {
		_, target := startWSTarget(t, secure, func(o *Options) { o.WebSocket.UpgradeTimeout = timeout })
		t.Run(target.scheme()+" nothing sent", func(t *testing.T) {
			start := time.Now()
			conn := target.dialTCP(t)
			waitClosed(t, conn, conn, timeout+slack)
			t.Logf("closed %v after connecting", time.Since(start).Round(time.Millisecond))
		})
		t.Run(target.scheme()+" request unfinished", func(t *testing.T) {
			start := time.Now()
			conn := target.dial(t)
			if _, err := io.WriteString(conn, "GET "+websocketPath+" HTTP/1.1\r\nHost: 127.0.0.1\r\n"); err != nil {
				t.Fatal(err)
			}
			waitClosed(t, conn, conn, timeout+slack)
			t.Logf("closed %v after connecting", time.Since(start).Round(time.Millisecond))
		})
		t.Run(target.scheme()+" upgraded connection outlives the timeout", func(t *testing.T) {
			u := presign(t, target.url, wsOperator.AccessKeyID, wsOperator.SecretAccessKey, wsOperator.SessionToken, time.Now(), 0)
			var opts []clientOption
			if target.tlsConf != nil {
				opts = append(opts, withTLS(target.tlsConf))
			}
			c := mustConnect(t, u, "outlives-"+target.scheme(), opts...)
			c.mustSubscribe(t, "ping")
			// Round trips until well past the upgrade timeout: the connection must stay.
			for deadline := time.Now().Add(3 * timeout); time.Now().Before(deadline); {
				c.publish(t, "ping", "x")
				c.expect(t, "ping", "x")
			}
			select {
			case err := <-c.lost:
				t.Fatalf("connection lost: %v", err)
			default:
			}
		})
	}
}
