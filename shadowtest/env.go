package shadowtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/shadowsync/shadowsync/localiot"
	"github.com/shadowsync/shadowsync/shadowstate"
)

// TB is the part of *testing.T (and of Ginkgo's GinkgoT()) that Start uses: the
// environment cleans itself up with Cleanup and fails the test with Fatalf when it
// cannot start.
type TB interface {
	Helper()
	Cleanup(func())
	TempDir() string
	Fatalf(format string, args ...any)
}

// Listener says how the clients that DeviceConfig and AppConfig describe connect.
type Listener int

const (
	// TLS is MQTT over mutual TLS, as devices connect to AWS IoT on port 8883: a
	// device presents its thing's certificate and may use its own shadow topics only;
	// the app presents the operator certificate and may use every topic.
	TLS Listener = iota
	// Plain is plain MQTT on loopback; every client has operator rights.
	Plain
	// WebSocket is MQTT over secure WebSocket with a SigV4-presigned URL, as on AWS's
	// wss://HOST/mqtt; every client signs with the environment's access key, which
	// has operator rights.
	WebSocket
)

// String returns the listener's name.
func (l Listener) String() string {
	switch l {
	case TLS:
		return "tls"
	case Plain:
		return "plain"
	case WebSocket:
		return "websocket"
	}
	return fmt.Sprintf("Listener(%d)", int(l))
}

// Options configure an Env. The zero value serves an embedded localiot with shadows in
// memory, and makes DeviceConfig and AppConfig connect over mutual TLS.
type Options struct {
	// Listener is how DeviceConfig and AppConfig connect. The zero value is TLS. With
	// Broker set it is always Plain.
	Listener Listener
	// DataDir, when set, keeps shadows in a bbolt database in this directory, so that
	// they survive Restart as they survive a restart of `shadowsync serve --data`.
	// Empty keeps them in memory, where they also survive Restart (only the broker
	// restarts). Not used with Broker.
	DataDir string
	// Broker, when set, is the URL of an external MQTT broker (mqtt://host:port) to use
	// instead of the embedded localiot: the Device Shadow service runs on it as a
	// client (localiot.NewBrokerShadowService), with shadows in memory. Empty means
	// the embedded localiot.
	Broker string
	// ThingTopics are passed to localiot.Options.ThingTopics: the topics, besides its
	// shadow topics, that a thing's certificate may use, e.g. "devices/${thing}/#".
	ThingTopics []string
	// Limits are passed to localiot.Options.Limits. The zero value enforces AWS IoT's.
	Limits localiot.Limits
	// JobsClock is passed to localiot.Options.Clock: the Jobs service's time source.
	// A fake clock lets a test run step and in-progress timeouts without waiting;
	// nil is the system clock. Not used with Broker.
	JobsClock localiot.Clock
	// Logger receives the logs of the broker, the shadow service and the clients made
	// from DeviceConfig and AppConfig. Nil discards them; in a Ginkgo suite pass
	// slog.New(slog.NewTextHandler(GinkgoWriter, nil)).
	Logger *slog.Logger
}

// startTimeout bounds how long Start and Restart wait for the broker.
const startTimeout = 30 * time.Second

// Env is a local AWS IoT for one test or one test suite: localiot's broker and Device
// Shadow service on ephemeral loopback ports (plain, mutual-TLS and WebSocket
// listeners), a certificate directory, and an app client that sets desired state.
// Create it with Start; it stops by itself when the test or suite ends. Its methods
// are safe for concurrent use.
type Env struct {
	opts     Options
	log      *slog.Logger
	certDir  string
	certs    *localiot.CertSet
	key      localiot.Credential // the WebSocket listener's access key
	clientNo uint64              // numbers client IDs; guarded by mu

	appMu sync.Mutex // serialises connecting the app

	mu      sync.Mutex
	things  map[string]Thing
	srv     *localiot.Server              // nil with Broker
	svc     *localiot.BrokerShadowService // nil without Broker
	store   localiot.Store
	bolt    *localiot.BoltStore // set when DataDir is
	eps     localiot.Endpoints
	stopSrv context.CancelFunc
	srvDone chan error
	app     *appClient
	stopped bool
}

// Start starts an Env for t and registers its shutdown with t.Cleanup. Called in a
// Ginkgo BeforeSuite with GinkgoT(), the Env lasts for the whole suite; in a
// BeforeEach or a test, for that spec or test. It fails t if anything cannot start.
func Start(t TB, opts Options) *Env {
	t.Helper()
	e, err := start(t.TempDir(), opts)
	if err != nil {
		t.Fatalf("shadowtest: %v", err)
		return nil
	}
	t.Cleanup(func() {
		if err := e.Stop(); err != nil {
			t.Fatalf("shadowtest: stop: %v", err)
		}
	})
	return e
}

func start(dir string, opts Options) (*Env, error) {
	if opts.Listener < TLS || opts.Listener > WebSocket {
		return nil, fmt.Errorf("unknown Listener %d", opts.Listener)
	}
	if opts.Broker != "" {
		opts.Listener = Plain
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := &Env{
		opts:    opts,
		log:     log,
		certDir: filepath.Join(dir, "certs"),
		key:     localiot.Credential{AccessKeyID: "AKIDSHADOWTEST" + randomHex(4), SecretAccessKey: randomHex(20)},
		things:  make(map[string]Thing),
	}
	certs, err := localiot.EnsureCerts(e.certDir)
	if err != nil {
		return nil, err
	}
	e.certs = certs
	if opts.Broker != "" {
		if err := e.attachToBroker(); err != nil {
			return nil, err
		}
		return e, nil
	}
	if err := e.openStore(); err != nil {
		return nil, err
	}
	if err := e.serve(localiot.Endpoints{}); err != nil {
		e.closeStore()
		return nil, err
	}
	return e, nil
}

// openStore opens the shadow store: bbolt in DataDir, or memory (kept across Restart).
func (e *Env) openStore() error {
	if e.opts.DataDir == "" {
		if e.store == nil {
			e.store = &localiot.MemoryStore{}
		}
		return nil
	}
	b, err := localiot.OpenBoltStore(filepath.Join(e.opts.DataDir, "shadows.db"))
	if err != nil {
		return err
	}
	e.bolt, e.store = b, b
	return nil
}

func (e *Env) closeStore() {
	if e.bolt != nil {
		if err := e.bolt.Close(); err != nil {
			e.log.Warn("closing the shadow store", "error", err)
		}
		e.bolt = nil
	}
}

// serve starts an embedded localiot; the listeners bind the addresses of at (for a
// restart) or ephemeral ports.
func (e *Env) serve(at localiot.Endpoints) error {
	srv, err := localiot.New(localiot.Options{
		Plain:       &localiot.PlainListener{Addr: hostPort(at.Plain)},
		TLS:         e.certs.TLSListener(hostPort(at.TLS)),
		WebSocket:   &localiot.WebSocketListener{Addr: hostPort(at.WebSocket), Certificate: &e.certs.Server, Credentials: []localiot.Credential{e.key}},
		ThingTopics: e.opts.ThingTopics,
		Limits:      e.opts.Limits,
		Store:       e.store,
		Clock:       e.opts.JobsClock,
		Logger:      e.log.With("component", "localiot"),
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Start(ctx) }()
	select {
	case <-srv.Ready():
	case err := <-done:
		cancel()
		return fmt.Errorf("start localiot: %w", err)
	case <-time.After(startTimeout):
		cancel()
		return fmt.Errorf("start localiot: not ready within %v", startTimeout)
	}
	e.srv, e.stopSrv, e.srvDone, e.eps = srv, cancel, done, srv.Endpoints()
	return nil
}

// attachToBroker runs the Device Shadow service on the external broker.
func (e *Env) attachToBroker() error {
	store := &localiot.MemoryStore{}
	svc, err := localiot.NewBrokerShadowService(localiot.BrokerShadowOptions{
		Broker: e.opts.Broker,
		Store:  store,
		Logger: e.log.With("component", "shadow-service"),
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Start(ctx) }()
	select {
	case <-svc.Ready():
	case err := <-done:
		cancel()
		return fmt.Errorf("start the shadow service on %s: %w", e.opts.Broker, err)
	case <-time.After(startTimeout):
		cancel()
		<-done
		return fmt.Errorf("start the shadow service on %s: not subscribed within %v", e.opts.Broker, startTimeout)
	}
	e.svc, e.store, e.stopSrv, e.srvDone = svc, store, cancel, done
	e.eps = localiot.Endpoints{Plain: e.opts.Broker}
	return nil
}

// Endpoints returns the URLs of the broker's listeners: mqtt://, mqtts:// and
// wss://…/mqtt on 127.0.0.1. With Options.Broker only Plain is set.
func (e *Env) Endpoints() localiot.Endpoints {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.eps
}

// Server returns the embedded localiot, or nil with Options.Broker. After Restart it
// is a new server.
func (e *Env) Server() *localiot.Server {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.srv
}

// Certs returns the certificates: the CA, the server's, the operator's and one per
// thing created with CreateThing. Their PEM files are in Certs().Dir.
func (e *Env) Certs() *localiot.CertSet { return e.certs }

// ErrRestartUnsupported is returned by Restart for an Env on an external broker.
var ErrRestartUnsupported = errors.New("shadowtest: restart needs the embedded localiot")

// Restart stops the embedded broker — every client is disconnected at once, as when
// the broker process dies — and starts a new one on the same addresses. Shadows
// survive: with Options.DataDir the database is closed and opened again from disk, as
// a restarted `shadowsync serve --data` would; otherwise the in-memory store is kept.
// Clients reconnect by themselves. Restart returns once the new broker serves.
func (e *Env) Restart() error {
	if e.opts.Broker != "" {
		return ErrRestartUnsupported
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopped {
		return errors.New("shadowtest: restart after Stop")
	}
	at := e.eps
	if err := e.stopServerLocked(); err != nil {
		return err
	}
	e.closeStore()
	if err := e.openStore(); err != nil {
		return err
	}
	// The old listeners are closed once Start has returned; bind their ports again.
	if err := e.serve(at); err != nil {
		return fmt.Errorf("shadowtest: restart on the same ports: %w", err)
	}
	return nil
}

// stopServerLocked stops the broker (or the shadow service) and waits for it.
func (e *Env) stopServerLocked() error {
	if e.stopSrv == nil {
		return nil
	}
	e.stopSrv()
	e.stopSrv = nil
	select {
	case err := <-e.srvDone:
		return err
	case <-time.After(startTimeout):
		return fmt.Errorf("broker did not stop within %v", startTimeout)
	}
}

// Stop closes the app client, stops the broker and closes the shadow store. Start
// registers it with t.Cleanup; calling it again does nothing.
func (e *Env) Stop() error {
	e.mu.Lock()
	if e.stopped {
		e.mu.Unlock()
		return nil
	}
	e.stopped = true
	app := e.app
	e.app = nil
	e.mu.Unlock()

	var errs []error
	if app != nil {
		errs = append(errs, app.close())
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	errs = append(errs, e.stopServerLocked())
	e.closeStore()
	return errors.Join(errs...)
}

// Shadow returns thing's classic shadow as the Device Shadow service stores it. A
// shadow never created, or deleted, has Exists false. Use it with Eventually and the
// matchers of this package:
//
//	Eventually(env.Shadow).WithArguments("lamp-1").Should(shadowtest.BeInSync())
func (e *Env) Shadow(thing string) (shadowstate.Shadow, error) {
	return e.NamedShadow(thing, "")
}

// NamedShadow returns thing's named shadow as the service stores it; name "" is the
// classic shadow.
func (e *Env) NamedShadow(thing, name string) (shadowstate.Shadow, error) {
	id := shadowstate.ID{Thing: thing, Name: name}
	if err := id.Validate(); err != nil {
		return shadowstate.Shadow{}, err
	}
	e.mu.Lock()
	store := e.store
	e.mu.Unlock()
	return store.Load(id)
}

// hostPort returns the host:port of an endpoint URL, "" for "".
func hostPort(endpoint string) string {
	if endpoint == "" {
		return ""
	}
	_, rest, ok := strings.Cut(endpoint, "://")
	if !ok {
		return endpoint
	}
	host, _, _ := strings.Cut(rest, "/")
	return host
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
