package localiot

import (
	"crypto/tls"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// onePortServer starts a server whose WebSocket listener also serves MQTT to clients
// offering ALPN x-amzn-mqtt-ca, as AWS IoT's port 443 does, with the certificates of
// thing-a and the operator.
func onePortServer(t *testing.T) (*Server, *CertSet) {
	t.Helper()
	certs, err := EnsureCerts("", "thing-a")
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, Options{WebSocket: &WebSocketListener{
		Certificate:  &certs.Server,
		Credentials:  []Credential{wsOperator, wsThing},
		MQTTOverALPN: certs.ClientCertAuth(),
		// Short, for the subtest in which a client never finishes an upgrade request;
		// still far longer than a TLS handshake on loopback.
		UpgradeTimeout: 2 * time.Second,
	}})
	eps := s.Endpoints()
	if eps.ALPN == "" || strings.TrimPrefix(eps.ALPN, "mqtts://")+websocketPath != strings.TrimPrefix(eps.WebSocket, "wss://") {
		t.Fatalf("endpoints %+v: want ALPN on the WebSocket listener's port", eps)
	}
	return s, certs
}

// wssURL presigns the wss:// endpoint u with the credential.
func wssURL(t *testing.T, u string, c Credential) string {
	t.Helper()
	signed := presign(t, strings.Replace(u, "wss://", "ws://", 1), c.AccessKeyID, c.SecretAccessKey, c.SessionToken, time.Now(), 0)
	return strings.Replace(signed, "ws://", "wss://", 1)
}

// On one port, the ALPN protocol the client offers picks the handler, as on AWS IoT's
// port 443: x-amzn-mqtt-ca is MQTT with a client certificate, http/1.1 or no ALPN is
// the WebSocket upgrade with SigV4 and no client certificate.
func TestOnePortALPNPicksMQTTOrWebSocket(t *testing.T) {
	s, certs := onePortServer(t)
	eps := s.Endpoints()
	withALPN := func(name string, protos ...string) *tls.Config {
		cfg, err := certs.ClientTLS(name)
		if err != nil {
			t.Fatal(err)
		}
		cfg.NextProtos, cfg.ServerName = protos, "127.0.0.1"
		return cfg
	}
	noCert := func(protos ...string) *tls.Config {
		return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: certs.Pool, ServerName: "127.0.0.1", NextProtos: protos}
	}

	t.Run("x-amzn-mqtt-ca is MQTT with a client certificate", func(t *testing.T) {
		op := mustConnect(t, eps.ALPN, "alpn-operator", withTLS(withALPN(OperatorCertName, alpnAmazonMQTT)))
		op.mustSubscribe(t, "telemetry/#")
		thing := mustConnect(t, eps.ALPN, "thing-a", withTLS(withALPN("thing-a", alpnAmazonMQTT)))
		got := thing.subscribe(t, 1, "$aws/things/thing-a/shadow/update/delta", "$aws/things/other/shadow/update/delta")
		if got["$aws/things/thing-a/shadow/update/delta"] != 1 || got["$aws/things/other/shadow/update/delta"] != 0x80 {
			t.Errorf("thing's SUBACK codes %v, want its own shadow granted and another's refused", got)
		}
		ws := mustConnect(t, wssURL(t, eps.WebSocket, wsOperator), "ws-operator", withTLS(noCert()))
		ws.publish(t, "telemetry/from-ws", "over websocket")
		op.expect(t, "telemetry/from-ws", "over websocket")
	})

	t.Run("negotiated protocols", func(t *testing.T) {
		addr := strings.TrimPrefix(eps.ALPN, "mqtts://")
		for _, tt := range []struct {
			name   string
			cfg    *tls.Config
			expect string
		}{
			{"mqtt", withALPN(OperatorCertName, alpnAmazonMQTT), alpnAmazonMQTT},
			{"mqtt preferred over http/1.1", withALPN(OperatorCertName, "http/1.1", alpnAmazonMQTT), alpnAmazonMQTT},
			{"http/1.1", noCert("http/1.1"), "http/1.1"},
			{"none", noCert(), ""},
		} {
			t.Run(tt.name, func(t *testing.T) {
				conn := (wsTarget{addr: addr}).dialTCP(t)
				tc := tls.Client(conn, tt.cfg)
				_ = tc.SetDeadline(time.Now().Add(wait))
				if err := tc.Handshake(); err != nil {
					t.Fatalf("handshake: %v", err)
				}
				if got := tc.ConnectionState().NegotiatedProtocol; got != tt.expect {
					t.Errorf("negotiated %q, want %q", got, tt.expect)
				}
			})
		}
	})

	for _, tt := range []struct {
		name   string
		protos []string
	}{
		{"no ALPN is WebSocket without a client certificate", nil},
		{"http/1.1 is WebSocket without a client certificate", []string{"http/1.1"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			thing := mustConnect(t, wssURL(t, eps.WebSocket, wsThing), "ws-thing", withTLS(noCert(tt.protos...)))
			got := thing.subscribe(t, 1, "$aws/things/ws-thing/shadow/update/delta", "$aws/things/thing-a/shadow/update/delta")
			if got["$aws/things/ws-thing/shadow/update/delta"] != 1 || got["$aws/things/thing-a/shadow/update/delta"] != 0x80 {
				t.Errorf("SUBACK codes %v, want the credential's thing granted and another refused", got)
			}
		})
	}

	t.Run("x-amzn-mqtt-ca without a client certificate is refused", func(t *testing.T) {
		if _, err := connect(t, eps.ALPN, "no-cert", withTLS(noCert(alpnAmazonMQTT))); err == nil {
			t.Error("connected without a client certificate")
		}
	})

	t.Run("x-amzn-mqtt-ca with a certificate from another CA is refused", func(t *testing.T) {
		now := time.Now()
		other, err := newAuthority("other CA", now.Add(-time.Hour), now.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		foreign, err := other.issue("thing-a", false, now.Add(-time.Hour), now.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		cfg := noCert(alpnAmazonMQTT)
		cfg.Certificates = []tls.Certificate{foreign}
		if _, err := connect(t, eps.ALPN, "thing-a", withTLS(cfg)); err == nil {
			t.Error("connected with a certificate the server does not trust")
		}
	})

	t.Run("MQTT without ALPN is not served", func(t *testing.T) {
		// What a client set up for port 8883 does on 443: AWS IoT requires the ALPN
		// protocol there, and so does this port. The client's CONNECT reaches the
		// WebSocket listener as the start of an HTTP request that never ends a line;
		// at its upgrade timeout the listener answers with an HTTP error and closes.
		// No CONNACK.
		conn := (wsTarget{addr: strings.TrimPrefix(eps.ALPN, "mqtts://")}).dialTCP(t)
		tc := tls.Client(conn, withALPN(OperatorCertName))
		_ = tc.SetDeadline(time.Now().Add(wait))
		if _, err := tc.Write(connectPacket("no-alpn")); err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(tc)
		if err != nil || !strings.HasPrefix(string(got), "HTTP/1.1 4") {
			t.Errorf("read %q (%v), want an HTTP error, then the connection closed", got, err)
		}
	})
}

// A client offering x-amzn-mqtt-ca without a certificate acceptable to the server is
// logged and counted as a client_certificate refusal of the WebSocket listener's port.
func TestOnePortRefusalCounted(t *testing.T) {
	certs, err := EnsureCerts("")
	if err != nil {
		t.Fatal(err)
	}
	rec := newLogRecorder()
	s := startServer(t, Options{
		WebSocket: &WebSocketListener{Certificate: &certs.Server, Credentials: []Credential{wsOperator}, MQTTOverALPN: certs.ClientCertAuth()},
		Logger:    slog.New(rec),
	})
	conn := (wsTarget{addr: strings.TrimPrefix(s.Endpoints().ALPN, "mqtts://")}).dialTCP(t)
	tc := tls.Client(conn, &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: certs.Pool, ServerName: "127.0.0.1", NextProtos: []string{alpnAmazonMQTT}})
	_ = tc.SetDeadline(time.Now().Add(wait))
	// With TLS 1.3 the client's side of the handshake may succeed; the server's
	// refusal arrives on the first read.
	if err := tc.Handshake(); err == nil {
		if _, err := tc.Read(make([]byte, 1)); err == nil {
			t.Fatal("the server accepted a handshake with no client certificate")
		}
	}
	waitFor(t, wait, "the refusal counted", func() bool {
		n, _ := refusedCount(t, s.Registry(), listenerWS, refusedClientCertificate)
		return n == 1
	})
	lines := rec.with("connection refused")
	if len(lines) != 1 || lines[0].attrs["remote"] != conn.LocalAddr().String() || lines[0].attrs["reason"] != refusedClientCertificate {
		t.Errorf("refusals logged: %v, want one client_certificate refusal of %s", lines, conn.LocalAddr())
	}
}

func TestMQTTOverALPNOptions(t *testing.T) {
	certs, err := EnsureCerts("")
	if err != nil {
		t.Fatal(err)
	}
	for name, ws := range map[string]*WebSocketListener{
		"no certificate": {Credentials: []Credential{wsOperator}, MQTTOverALPN: certs.ClientCertAuth()},
		"no client CAs":  {Certificate: &certs.Server, Credentials: []Credential{wsOperator}, MQTTOverALPN: &ClientCertAuth{}},
	} {
		if _, err := New(Options{WebSocket: ws}); err == nil {
			t.Errorf("%s: New succeeded, want ErrInvalidOptions", name)
		}
	}
}
