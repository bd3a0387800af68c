package transport_test

import (
	"context"
	"crypto/tls"
	"errors"
	"github.com/shadowsync/shadowsync/transport"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/shadowsync/shadowsync/internal/testserver"
	"github.com/shadowsync/shadowsync/localiot"
)

var wsOperator = localiot.Credential{AccessKeyID: "AKIDTRANSPORTTEST", SecretAccessKey: "transport-test-secret"}

// TestEndpointKinds connects over each endpoint kind against localiot and makes a
// QoS 1 round trip: plain mqtt://, mqtts:// with X.509 mutual auth, mqtts:// with ALPN
// x-amzn-mqtt-ca (what port 443 uses), and wss:// with a SigV4 URL.
func TestEndpointKinds(t *testing.T) {
	certs, err := localiot.EnsureCerts("")
	if err != nil {
		t.Fatal(err)
	}
	wsCert := certs.Server
	eps := testserver.Start(t, localiot.Options{
		Plain:     &localiot.PlainListener{},
		TLS:       certs.TLSListener(""),
		WebSocket: &localiot.WebSocketListener{Certificate: &wsCert, Credentials: []localiot.Credential{wsOperator}},
	}).Endpoints()
	opTLS, err := certs.ClientTLS(localiot.OperatorCertName)
	if err != nil {
		t.Fatal(err)
	}
	plain := dialConn(t, transport.Config{Endpoint: eps.Plain})

	tests := []struct {
		name string
		cfg  transport.Config
		alpn string
	}{
		{"mqtt", transport.Config{Endpoint: eps.Plain}, ""},
		{"mqtts", transport.Config{Endpoint: eps.TLS, TLS: opTLS}, ""},
		{"mqtts-alpn", transport.Config{Endpoint: eps.TLS, TLS: opTLS, ALPN: []string{"x-amzn-mqtt-ca"}}, "x-amzn-mqtt-ca"},
		{"wss", transport.Config{Endpoint: eps.WebSocket, Region: "us-east-1", TLS: &tls.Config{RootCAs: certs.Pool},
			Credentials: credentials.NewStaticCredentialsProvider(wsOperator.AccessKeyID, wsOperator.SecretAccessKey, "")}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialConn(t, tt.cfg)
			roundTrip(t, c, plain, "kinds/"+tt.name)
			roundTrip(t, plain, c, "kinds/"+tt.name+"/back")
			if tt.alpn != "" {
				got, err := transport.NegotiatedALPN(t.Context(), c)
				if err != nil {
					t.Fatal(err)
				}
				if got != tt.alpn {
					t.Errorf("negotiated ALPN %q, want %q", got, tt.alpn)
				}
			}
		})
	}
}

// TestOnePortMQTTAndWebSocket: localiot's WebSocket listener with MQTTOverALPN serves
// both of what AWS IoT serves on port 443 — mqtts:// with ALPN x-amzn-mqtt-ca and a
// client certificate, wss:// with SigV4 and none — on the one port, and the two talk
// to each other.
func TestOnePortMQTTAndWebSocket(t *testing.T) {
	certs, err := localiot.EnsureCerts("")
	if err != nil {
		t.Fatal(err)
	}
	wsCert := certs.Server
	eps := testserver.Start(t, localiot.Options{WebSocket: &localiot.WebSocketListener{
		Certificate: &wsCert, Credentials: []localiot.Credential{wsOperator}, MQTTOverALPN: certs.ClientCertAuth(),
	}}).Endpoints()
	opTLS, err := certs.ClientTLS(localiot.OperatorCertName)
	if err != nil {
		t.Fatal(err)
	}
	mqtts := dialConn(t, transport.Config{Endpoint: eps.ALPN, TLS: opTLS, ALPN: []string{"x-amzn-mqtt-ca"}})
	wss := dialConn(t, transport.Config{Endpoint: eps.WebSocket, Region: "us-east-1", TLS: &tls.Config{RootCAs: certs.Pool},
		Credentials: credentials.NewStaticCredentialsProvider(wsOperator.AccessKeyID, wsOperator.SecretAccessKey, "")})
	if got, err := transport.NegotiatedALPN(t.Context(), mqtts); err != nil || got != "x-amzn-mqtt-ca" {
		t.Errorf("mqtts negotiated ALPN %q (%v), want x-amzn-mqtt-ca", got, err)
	}
	roundTrip(t, mqtts, wss, "one-port/from-wss")
	roundTrip(t, wss, mqtts, "one-port/from-mqtts")
}

// TestTLSRefused: a wrong CA, a wrong host name, an expired client certificate and a
// client certificate the server does not trust each fail Dial at once with an error
// that says which.
func TestTLSRefused(t *testing.T) {
	ca := newTestCA(t)
	now := time.Now()
	server := ca.issue(t, "server", true, now.Add(-time.Hour), now.Add(time.Hour))
	eps := testserver.Start(t, localiot.Options{TLS: &localiot.TLSListener{Certificate: server, ClientCAs: ca.pool}}).Endpoints()
	good := ca.issue(t, "thing1", false, now.Add(-time.Hour), now.Add(time.Hour))
	expired := ca.issue(t, "thing1", false, now.Add(-2*time.Hour), now.Add(-time.Hour))
	other := newTestCA(t)
	stranger := other.issue(t, "thing1", false, now.Add(-time.Hour), now.Add(time.Hour))

	tests := []struct {
		name string
		tls  *tls.Config
		is   error
		says string
	}{
		{"wrong CA", &tls.Config{RootCAs: other.pool, Certificates: []tls.Certificate{good}}, transport.ErrServerCertificate, "unknown authority"},
		{"wrong host name", &tls.Config{RootCAs: ca.pool, ServerName: "not-this-server.example", Certificates: []tls.Certificate{good}}, transport.ErrServerCertificate, "wrong host name"},
		{"expired client certificate", &tls.Config{RootCAs: ca.pool, Certificates: []tls.Certificate{expired}}, transport.ErrClientCertificate, "expired at"},
		{"untrusted client certificate", &tls.Config{RootCAs: ca.pool, Certificates: []tls.Certificate{stranger}}, transport.ErrClientCertificate, "server refused it"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), wait)
			defer cancel()
			start := time.Now()
			_, err := transport.Dial(ctx, transport.Config{Endpoint: eps.TLS, TLS: tt.tls})
			if !errors.Is(err, tt.is) || !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("transport.Dial = %v; want %v saying %q", err, tt.is, tt.says)
			}
			if d := time.Since(start); d > wait/2 {
				t.Errorf("transport.Dial took %v to give up on a permanent error", d)
			}
			t.Logf("%s: %v", tt.name, err)
		})
	}
	// The good certificate works, so the refusals above are the certificates' fault.
	// A thing's certificate connects with the thing's name as client ID.
	c := dialConn(t, transport.Config{Endpoint: eps.TLS, ClientID: "thing1", TLS: &tls.Config{RootCAs: ca.pool, Certificates: []tls.Certificate{good}}})
	if !c.IsOnline() {
		t.Error("good certificate: not online")
	}
}

// TestWebSocketCredentials: SigV4 with credentials from code (with a session token,
// appended after signing), from the environment, and from the shared credentials
// file under a temporary HOME; wrong and missing credentials fail clearly.
func TestWebSocketCredentials(t *testing.T) {
	temp := localiot.Credential{AccessKeyID: "ASIATEMPORARY", SecretAccessKey: "temp-secret", SessionToken: "FwoGZXIvYXdz+token/with=odd&chars"}
	eps := testserver.Start(t, localiot.Options{WebSocket: &localiot.WebSocketListener{
		Region: "eu-west-1", Credentials: []localiot.Credential{wsOperator, temp}}}).Endpoints()
	// An AWS-like host name gives the region; the dialer really goes to localiot.
	u, _ := url.Parse(eps.WebSocket)
	base := transport.Config{Endpoint: eps.WebSocket, Region: "eu-west-1"}

	transport.ClearAWSEnv(t)
	home := t.TempDir()
	t.Setenv("HOME", home)

	t.Run("code", func(t *testing.T) {
		cfg := base
		cfg.Credentials = credentials.NewStaticCredentialsProvider(temp.AccessKeyID, temp.SecretAccessKey, temp.SessionToken)
		c := dialConn(t, cfg)
		roundTrip(t, c, c, "ws/code")
	})
	t.Run("environment", func(t *testing.T) {
		t.Setenv("AWS_ACCESS_KEY_ID", wsOperator.AccessKeyID)
		t.Setenv("AWS_SECRET_ACCESS_KEY", wsOperator.SecretAccessKey)
		c := dialConn(t, base)
		roundTrip(t, c, c, "ws/env")
	})
	t.Run("shared file", func(t *testing.T) {
		transport.WriteSharedCredentials(t, home, "default", wsOperator.AccessKeyID, wsOperator.SecretAccessKey)
		c := dialConn(t, base)
		roundTrip(t, c, c, "ws/file")
	})
	t.Run("profile", func(t *testing.T) {
		transport.WriteSharedCredentials(t, home, "device", wsOperator.AccessKeyID, wsOperator.SecretAccessKey)
		cfg := base
		cfg.Profile = "device"
		c := dialConn(t, cfg)
		roundTrip(t, c, c, "ws/profile")
	})
	t.Run("wrong secret", func(t *testing.T) {
		cfg := base
		cfg.Credentials = credentials.NewStaticCredentialsProvider(wsOperator.AccessKeyID, "not-the-secret", "")
		ctx, cancel := context.WithTimeout(t.Context(), wait)
		defer cancel()
		_, err := transport.Dial(ctx, cfg)
		if !errors.Is(err, transport.ErrNotAuthorized) || strings.Contains(err.Error(), "not-the-secret") {
			t.Fatalf("transport.Dial = %v; want transport.ErrNotAuthorized without the secret", err)
		}
	})
	t.Run("region mismatch", func(t *testing.T) {
		cfg := transport.Config{Endpoint: "ws://" + u.Host + "/mqtt", Region: "us-east-1",
			Credentials: credentials.NewStaticCredentialsProvider(wsOperator.AccessKeyID, wsOperator.SecretAccessKey, "")}
		ctx, cancel := context.WithTimeout(t.Context(), wait)
		defer cancel()
		if _, err := transport.Dial(ctx, cfg); !errors.Is(err, transport.ErrNotAuthorized) {
			t.Fatalf("transport.Dial = %v; want transport.ErrNotAuthorized", err)
		}
	})
	t.Run("none", func(t *testing.T) {
		if err := removeAll(home); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), wait)
		defer cancel()
		_, err := transport.Dial(ctx, base)
		if !errors.Is(err, transport.ErrNoCredentials) || !strings.Contains(err.Error(), home) {
			t.Fatalf("transport.Dial = %v; want transport.ErrNoCredentials naming the files under %s", err, home)
		}
	})
}

func removeAll(home string) error { return os.RemoveAll(filepath.Join(home, ".aws")) }

// TestCredentialExpiryReconnect: credentials that expire make a WebSocket
// connection reconnect before they do, asking the provider again for fresh ones.
func TestCredentialExpiryReconnect(t *testing.T) {
	eps := testserver.Start(t, localiot.Options{WebSocket: &localiot.WebSocketListener{Credentials: []localiot.Credential{wsOperator}}}).Endpoints()
	var asked atomic.Int32
	provider := aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		asked.Add(1)
		return aws.Credentials{AccessKeyID: wsOperator.AccessKeyID, SecretAccessKey: wsOperator.SecretAccessKey,
			CanExpire: true, Expires: time.Now().Add(2 * time.Second)}, nil
	})
	ev := newEvents()
	cfg := transport.Config{Endpoint: eps.WebSocket, Region: "us-east-1", Credentials: provider}
	ev.hook(&cfg)
	newConn(t, cfg, nil)
	ev.waitOnline(t)
	start := time.Now()
	if err := ev.waitOffline(t); !errors.Is(err, transport.ErrPlannedReconnect) {
		t.Fatalf("OnOffline(%v), want transport.ErrPlannedReconnect", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("planned reconnect after %v, later than the credentials' expiry", d)
	}
	ev.waitOnline(t)
	if n := asked.Load(); n < 2 {
		t.Errorf("provider asked %d times, want once per connect", n)
	}
}
