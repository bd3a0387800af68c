package shadowtest

import (
	"context"
	"crypto/tls"
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/shadowsync/shadowsync/localiot"
	"github.com/shadowsync/shadowsync/transport"
)

// Thing is a thing's identity, as AWS IoT's CreateThing plus a certificate give it:
// a client certificate whose subject CN is the thing's name, signed by the Env's CA.
// Over TLS it may use its own shadow topics (and Options.ThingTopics) only.
type Thing struct {
	// Name is the thing's name.
	Name string
	// CAFile, CertFile and KeyFile are PEM files: the CA that signed the broker's
	// certificate, the thing's certificate and its private key — what a device program
	// takes as --ca, --cert and --key.
	CAFile, CertFile, KeyFile string
	// TLS presents the thing's certificate and trusts only the Env's CA.
	TLS *tls.Config
}

// CreateThing issues a certificate for a thing named name (or returns the one issued
// before). It creates no shadow: a shadow exists once someone updates it.
func (e *Env) CreateThing(name string) (Thing, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if th, ok := e.things[name]; ok {
		return th, nil
	}
	set, err := localiot.EnsureCerts(e.certDir, name) // reuses the CA in certDir
	if err != nil {
		return Thing{}, fmt.Errorf("shadowtest: create thing %q: %w", name, err)
	}
	cfg, err := set.ClientTLS(name)
	if err != nil {
		return Thing{}, fmt.Errorf("shadowtest: create thing %q: %w", name, err)
	}
	th := Thing{
		Name:     name,
		CAFile:   filepath.Join(e.certDir, localiot.CACertName+".pem"),
		CertFile: filepath.Join(e.certDir, name+".pem"),
		KeyFile:  filepath.Join(e.certDir, name+".key"),
		TLS:      cfg,
	}
	e.things[name] = th
	return th, nil
}

// DeviceConfig returns the transport configuration of a device acting as th, over
// Options.Listener: over TLS it presents th's certificate; over Plain and WebSocket it
// has operator rights. The client ID is th's name, "@" and a number unique within the
// Env ("Bot@3": connections never kick each other off, and localiot lets a thing's
// certificate use it), and the settings suit tests: reconnects
// after 20 ms to 1 s with jitter, no publish rate cap, the offline queue drained at
// once, 5 s to connect. Change any field before use, e.g. KeepAlive for a test that black-holes the
// link, or Endpoint to go through a fault-injecting proxy.
func (e *Env) DeviceConfig(th Thing) transport.Config {
	cfg := e.config(th.Name, "@")
	if e.opts.Listener == TLS {
		cfg.TLS = th.TLS
	}
	return cfg
}

// AppConfig returns the transport configuration of an app or a fleet service: a
// client with operator rights, which may use every topic, over Options.Listener (with
// the operator certificate over TLS), with the same test settings as DeviceConfig. Use
// it for a reconciler.Manager that manages many things.
func (e *Env) AppConfig() transport.Config {
	cfg := e.config("app", "-")
	if e.opts.Listener == TLS {
		op, err := e.certs.ClientTLS(localiot.OperatorCertName)
		if err == nil { // the operator certificate always exists
			cfg.TLS = op
		}
	}
	return cfg
}

// config returns the settings every client shares, for Options.Listener, with the
// client ID prefix, sep and a number.
func (e *Env) config(prefix, sep string) transport.Config {
	e.mu.Lock()
	e.clientNo++
	n := e.clientNo
	eps := e.eps
	e.mu.Unlock()
	id := prefix + sep + strconv.FormatUint(n, 10)
	cfg := transport.Config{
		ClientID:       id,
		Backoff:        transport.ExponentialBackoff(20*time.Millisecond, time.Second, 0.5),
		ConnectTimeout: 5 * time.Second,
		MaxPublishRate: -1,
		DrainRate:      math.Inf(1),
		DisableMetrics: true,
		Logger:         e.log.With("client", id),
	}
	switch e.opts.Listener {
	case TLS:
		cfg.Endpoint = eps.TLS
	case Plain:
		cfg.Endpoint = eps.Plain
	case WebSocket:
		cfg.Endpoint = eps.WebSocket
		cfg.TLS = &tls.Config{RootCAs: e.certs.Pool}
		cfg.Region = "us-east-1"
		key := e.key
		cfg.Credentials = aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: key.AccessKeyID, SecretAccessKey: key.SecretAccessKey, Source: "shadowtest"}, nil
		})
	}
	return cfg
}
