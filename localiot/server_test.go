package localiot

import (
	"context"
	"crypto/tls"
	"errors"
	"testing"
	"time"
)

func TestNewRejectsBadOptions(t *testing.T) {
	certs, err := EnsureCerts("")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		opts Options
	}{
		{"tls without certificate", Options{TLS: &TLSListener{ClientCAs: certs.Pool}}},
		{"tls without client CAs", Options{TLS: &TLSListener{Certificate: certs.Server}}},
		{"websocket without credentials", Options{WebSocket: &WebSocketListener{}}},
		{"credential without secret", Options{WebSocket: &WebSocketListener{Credentials: []Credential{{AccessKeyID: "AKID"}}}}},
		{"duplicate access key", Options{WebSocket: &WebSocketListener{Credentials: []Credential{{AccessKeyID: "A", SecretAccessKey: "s"}, {AccessKeyID: "A", SecretAccessKey: "t"}}}}},
		{"credential for an invalid thing", Options{WebSocket: &WebSocketListener{Credentials: []Credential{{AccessKeyID: "A", SecretAccessKey: "s", Thing: "a b"}}}}},
		{"reserved thing topic", Options{ThingTopics: []string{"$aws/things/${thing}/jobs/#"}}},
		{"invalid thing topic", Options{ThingTopics: []string{"a/#/b"}}},
		{"negative throttle", Options{Limits: Limits{MaxPublishRate: -1}}},
		{"session expiry under a second", Options{SessionExpiry: time.Millisecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.opts); !errors.Is(err, ErrInvalidOptions) {
				t.Errorf("New error = %v, want ErrInvalidOptions", err)
			}
		})
	}
}

func TestStartTwice(t *testing.T) {
	s := startServer(t, Options{})
	if err := s.Start(t.Context()); !errors.Is(err, ErrStarted) {
		t.Errorf("second Start = %v, want ErrStarted", err)
	}
}

func TestPlainPubSub(t *testing.T) {
	s := startServer(t, Options{}) // the zero value: plain MQTT on an ephemeral loopback port
	eps := s.Endpoints()
	if eps.Plain == "" || eps.TLS != "" || eps.WebSocket != "" {
		t.Fatalf("Endpoints = %+v, want only Plain", eps)
	}
	sub := mustConnect(t, eps.Plain, "sub")
	sub.mustSubscribe(t, "sensors/+/temp", "$aws/things/Pump-7/shadow/update")
	pub := mustConnect(t, eps.Plain, "pub")
	pub.publish(t, "sensors/a/temp", "21")
	sub.expect(t, "sensors/a/temp", "21")
	// Plain clients are operators: any thing's shadow request topic is theirs.
	pub.publish(t, "$aws/things/Pump-7/shadow/update", `{"state":{}}`)
	sub.expect(t, "$aws/things/Pump-7/shadow/update", `{"state":{}}`)
}

func TestStartReturnsOnCancel(t *testing.T) {
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Start(ctx) }()
	select {
	case <-s.Ready():
	case <-time.After(wait):
		t.Fatal("not ready")
	}
	c := mustConnect(t, s.Endpoints().Plain, "c")
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Start = %v, want nil", err)
		}
	case <-time.After(wait):
		t.Fatal("Start did not return")
	}
	c.expectLost(t)
}

func TestTLS(t *testing.T) {
	certs, err := EnsureCerts("", "thing-a")
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, Options{TLS: certs.TLSListener("")})
	url := s.Endpoints().TLS

	now := time.Now()
	other, err := newAuthority("other CA", now.Add(-time.Hour), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := other.issue("thing-a", false, now.Add(-time.Hour), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	expired, err := certs.ca.issue("thing-a", false, now.Add(-2*time.Hour), now.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	withCert := func(c ...tls.Certificate) *tls.Config {
		return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: certs.Pool, Certificates: c}
	}
	thingCfg, _ := certs.ClientTLS("thing-a")
	operatorCfg, _ := certs.ClientTLS(OperatorCertName)

	tests := []struct {
		name   string
		cfg    *tls.Config
		wantOK bool
	}{
		{"thing certificate", thingCfg, true},
		{"operator certificate", operatorCfg, true},
		{"no client certificate", withCert(), false},
		{"certificate from another CA", withCert(foreign), false},
		{"expired certificate", withCert(expired), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := connect(t, url, "thing-a", withTLS(tt.cfg)) // a thing connects with its name as client ID
			if tt.wantOK && err != nil {
				t.Errorf("connect: %v", err)
			}
			if !tt.wantOK && err == nil {
				t.Error("connect succeeded, want refusal")
			}
		})
	}

	t.Run("ALPN x-amzn-mqtt-ca", func(t *testing.T) {
		cfg := thingCfg.Clone()
		cfg.NextProtos = []string{alpnAmazonMQTT}
		d := tls.Dialer{Config: cfg}
		conn, err := d.DialContext(t.Context(), "tcp", url[len("mqtts://"):])
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if got := conn.(*tls.Conn).ConnectionState().NegotiatedProtocol; got != alpnAmazonMQTT {
			t.Errorf("negotiated protocol %q, want %q", got, alpnAmazonMQTT)
		}
	})

	t.Run("thing and operator pub/sub", func(t *testing.T) {
		op := mustConnect(t, url, "op", withTLS(operatorCfg))
		op.mustSubscribe(t, "$aws/things/thing-a/shadow/update")
		thing := mustConnect(t, url, "thing-a", withTLS(thingCfg))
		thing.publish(t, "$aws/things/thing-a/shadow/update", "{}")
		op.expect(t, "$aws/things/thing-a/shadow/update", "{}")
	})
}
