package cmdkit

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/shadowsync/shadowsync/localiot"
	"github.com/shadowsync/shadowsync/transport"
)

// Listener is the listener of the embedded localiot that a program connects through
// when it runs without --endpoint: plain MQTT is simplest; TLS and WebSocket make the
// local run authenticate as it will on AWS IoT.
type Listener int

const (
	// Plain is plain MQTT with operator rights: mqtt://127.0.0.1:PORT.
	Plain Listener = iota
	// TLS is MQTT over TLS with a client certificate, as on AWS's port 8883: the
	// certificate of Options.Thing, which may use that thing's shadow only, or the
	// operator's when Thing is empty.
	TLS
	// WebSocket is MQTT over secure WebSocket with a SigV4-presigned URL, as on
	// AWS's wss://HOST/mqtt: it accepts the access key Options.Credentials returns.
	WebSocket
)

// localRegion is the region a program signs with against the embedded localiot,
// which accepts any region.
const localRegion = "us-east-1"

// Options say how a program connects when it runs against the embedded localiot. The
// zero value is plain MQTT with operator rights and AWS IoT's limits.
type Options struct {
	// Listener is the embedded localiot's listener; zero means Plain.
	Listener Listener
	// Thing, for TLS, is the thing whose certificate the program presents, so that it
	// may use that thing's topics only, as on AWS IoT; empty means the operator's.
	Thing string
	// Credentials sign WebSocket URLs, locally and on --endpoint wss://. Nil means
	// the standard AWS chain on --endpoint, and a generated access key locally.
	// Locally, the embedded listener accepts whatever key the provider returns.
	Credentials aws.CredentialsProvider
	// Limits are the embedded localiot's message broker limits. The zero value
	// enforces AWS IoT's (payload size, subscriptions, client IDs, topics, QoS,
	// keep-alive), so a program that runs locally is not refused on AWS IoT;
	// localiot.Limits{Off: true} makes it a plain MQTT broker. Ignored with --endpoint.
	Limits localiot.Limits
}

// Target is where a program runs: the endpoint given with --endpoint, or a localiot
// started in-process. Close it once the program's clients have disconnected.
type Target struct {
	// Local reports whether the target is an embedded localiot.
	Local bool
	// Endpoint is the URL clients connect to.
	Endpoint string

	flags *Flags
	opts  Options
	srv   *localiot.Server // the embedded localiot; nil with --endpoint
	tls   *tls.Config      // embedded TLS and WebSocket listeners: the client's config
	stop  context.CancelFunc
	done  chan error
	once  sync.Once
	err   error // what the embedded localiot's Start returned
}

// Open returns the target the flags describe. With --endpoint it connects nothing and
// starts nothing. Without it, it starts a localiot with the listener and limits opts
// asks for, on an ephemeral 127.0.0.1 port, with certificates and shadows kept in
// memory, and returns once it accepts connections; --ca, --cert and --key are then a
// usage error.
//
// The embedded localiot does not stop when ctx ends, only on Close: a program whose
// ctx ends (SIGINT, a test's deadline) still has a broker while its manager reports
// what is in flight and its connections close. ctx bounds only the start.
func Open(ctx context.Context, f *Flags, opts Options) (*Target, error) {
	if f.Endpoint != "" {
		return &Target{Endpoint: f.Endpoint, flags: f, opts: opts}, nil
	}
	if f.CAFile != "" || f.CertFile != "" || f.KeyFile != "" {
		return nil, Usagef("--ca, --cert and --key need --endpoint")
	}
	t := &Target{Local: true, flags: f, opts: opts, done: make(chan error, 1)}
	srvOpts := localiot.Options{Limits: opts.Limits}
	if opts.Listener != Plain {
		var things []string
		if opts.Thing != "" {
			things = append(things, opts.Thing)
		}
		certs, err := localiot.EnsureCerts("", things...)
		if err != nil {
			return nil, err
		}
		switch opts.Listener {
		case TLS:
			srvOpts.TLS = certs.TLSListener("")
			name := opts.Thing
			if name == "" {
				name = localiot.OperatorCertName
			}
			if t.tls, err = certs.ClientTLS(name); err != nil {
				return nil, err
			}
		case WebSocket:
			if t.opts.Credentials == nil {
				t.opts.Credentials = credentials.NewStaticCredentialsProvider("AKIDLOCAL"+randomHex(6), randomHex(20), "")
			}
			creds, err := t.opts.Credentials.Retrieve(ctx)
			if err != nil {
				return nil, fmt.Errorf("credentials for the embedded localiot: %w", err)
			}
			srvOpts.WebSocket = &localiot.WebSocketListener{
				Certificate: &certs.Server,
				Credentials: []localiot.Credential{{AccessKeyID: creds.AccessKeyID, SecretAccessKey: creds.SecretAccessKey, SessionToken: creds.SessionToken}},
			}
			t.tls = &tls.Config{RootCAs: certs.Pool}
		}
	}
	srv, err := localiot.New(srvOpts)
	if err != nil {
		return nil, err
	}
	var srvCtx context.Context
	srvCtx, t.stop = context.WithCancel(context.WithoutCancel(ctx))
	go func() { t.done <- srv.Start(srvCtx) }()
	select {
	case <-srv.Ready():
	case err := <-t.done:
		t.stop()
		return nil, fmt.Errorf("start localiot: %w", err)
	case <-ctx.Done():
		t.stop()
		<-t.done
		return nil, ctx.Err()
	}
	t.srv = srv
	eps := srv.Endpoints()
	t.Endpoint = map[Listener]string{Plain: eps.Plain, TLS: eps.TLS, WebSocket: eps.WebSocket}[opts.Listener]
	return t, nil
}

// Server returns the embedded localiot, or nil with --endpoint: a program's local run
// acts on it as an operator would on AWS IoT, e.g. creating the job it then carries
// out (Server.CreateJob).
func (t *Target) Server() *localiot.Server { return t.srv }

// Config returns the transport configuration of a client of the target, with clientID
// as its client ID unless --client-id was given. On an embedded TLS listener with a
// thing's certificate the client ID is the thing's name, "@" and clientID
// ("Bot@basicShadowUpdater"): localiot, like the usual AWS IoT policy, lets a thing's
// certificate connect only with a client ID of its own.
func (t *Target) Config(clientID string) transport.Config {
	if t.Local && t.opts.Listener == TLS && t.opts.Thing != "" {
		clientID = t.opts.Thing + "@" + clientID
	}
	cfg := t.flags.Config(clientID)
	cfg.Endpoint = t.Endpoint
	cfg.Credentials = t.opts.Credentials
	if t.Local {
		cfg.TLS = t.tls
		if t.opts.Listener == WebSocket && cfg.Region == "" {
			cfg.Region = localRegion
		}
	}
	return cfg
}

// Close stops the embedded localiot, if any, and returns once it has stopped; with
// --endpoint it does nothing. Call it after the program's clients have disconnected
// (after reconciler.Manager.Start and transport.Conn.Close have returned): a
// `defer target.Close()` right after Open does this, since defers run last-in
// first-out. Close may be called more than once; later calls return the first's
// result.
func (t *Target) Close() error {
	if !t.Local {
		return nil
	}
	t.once.Do(func() {
		t.stop()
		t.err = <-t.done
	})
	return t.err
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
