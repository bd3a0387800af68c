package transport_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"github.com/shadowsync/shadowsync/transport"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// wait bounds every blocking step of a test.
const wait = 10 * time.Second

// events records a Conn's OnOnline/OnOffline calls.
type events struct {
	online  chan struct{}
	offline chan error
}

func newEvents() *events {
	return &events{online: make(chan struct{}, 64), offline: make(chan error, 64)}
}

func (e *events) hook(cfg *transport.Config) {
	cfg.OnOnline = func() { e.online <- struct{}{} }
	cfg.OnOffline = func(err error) { e.offline <- err }
}

func (e *events) waitOnline(t *testing.T) {
	t.Helper()
	select {
	case <-e.online:
	case <-time.After(wait):
		t.Fatal("no OnOnline")
	}
}

func (e *events) waitOffline(t *testing.T) error {
	t.Helper()
	select {
	case err := <-e.offline:
		return err
	case <-time.After(wait):
		t.Fatal("no OnOffline")
	}
	return nil
}

// newConn creates a Conn, lets prepare adjust it before Start, starts it, and closes
// it when the test ends.
func newConn(t *testing.T, cfg transport.Config, prepare func(*transport.Conn)) *transport.Conn {
	t.Helper()
	c, err := transport.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if prepare != nil {
		prepare(c)
	}
	done := make(chan error, 1)
	go func() { done <- c.Start(context.Background()) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if err := c.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
		select {
		case <-done:
		case <-time.After(wait):
			t.Errorf("Start did not return after Close")
		}
	})
	return c
}

// dialConn dials a Conn and closes it when the test ends.
func dialConn(t *testing.T, cfg transport.Config) *transport.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	c, err := transport.Dial(ctx, cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if err := c.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

// collector is a handler that forwards messages to a channel.
type collector chan transport.Message

func newCollector() collector { return make(collector, 256) }

func (c collector) HandleMessage(_ context.Context, m transport.Message) { c <- m }

// next returns the next message or fails the test after wait.
func (c collector) next(t *testing.T) transport.Message {
	t.Helper()
	select {
	case m := <-c:
		return m
	case <-time.After(wait):
		t.Fatal("no message")
	}
	return transport.Message{}
}

// none checks that no message arrives within d.
func (c collector) none(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case m := <-c:
		t.Fatalf("unexpected message on %s: %q", m.Topic, m.Payload)
	case <-time.After(d):
	}
}

// roundTrip subscribes c to topic, publishes on pub and checks that c receives it.
func roundTrip(t *testing.T, c, pub *transport.Conn, topic string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	got := newCollector()
	sub, err := c.Subscribe(ctx, topic, got, transport.QoS(1))
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	defer sub.Unsubscribe(ctx)
	if err := pub.Publish(ctx, topic, []byte("hello"), transport.QoS(1)); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if m := got.next(t); m.Topic != topic || string(m.Payload) != "hello" || m.QoS != 1 {
		t.Fatalf("got %+v", m)
	}
}

// fakeClock controls the connection loop's backoff waits: each After is recorded and
// fires only when the test says so.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	waits chan fakeWait
}

type fakeWait struct {
	d  time.Duration
	ch chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), waits: make(chan fakeWait, 1000)}
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
}

func (f *fakeClock) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	f.waits <- fakeWait{d, ch}
	return ch
}

// next returns the next wait the loop asked for.
func (f *fakeClock) next(t *testing.T) fakeWait {
	t.Helper()
	select {
	case w := <-f.waits:
		return w
	case <-time.After(wait):
		t.Fatal("the connection loop asked for no backoff wait")
	}
	return fakeWait{}
}

// fire advances the clock by the wait and lets it end.
func (f *fakeClock) fire(w fakeWait) {
	f.Advance(w.d)
	w.ch <- f.Now()
}

// testCA is a certificate authority made for one test, able to issue certificates
// with any validity.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "transport test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue makes a server certificate for 127.0.0.1 and localhost, or a client
// certificate for cn, valid from notBefore to notAfter.
func (ca *testCA) issue(t *testing.T, cn string, server bool, notBefore, notAfter time.Time) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.DNSNames = []string{"localhost"}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// allowAll is a mochi hook that lets every client connect, publish and subscribe;
// hooks for a bare broker embed it and add what they observe.
type allowAll struct{ mqtt.HookBase }

func (allowAll) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }

func (allowAll) OnACLCheck(*mqtt.Client, string, bool) bool { return true }

// startBareBroker runs a plain mochi broker (no localiot rules) with hook on a
// loopback port for the test, and returns it with its mqtt:// endpoint. hook must
// provide OnConnectAuthenticate and OnACLCheck (embed allowAll).
func startBareBroker(t *testing.T, hook mqtt.Hook) (*mqtt.Server, string) {
	t.Helper()
	broker := mqtt.New(&mqtt.Options{InlineClient: true})
	if err := broker.AddHook(hook, nil); err != nil {
		t.Fatal(err)
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "t", Address: "127.0.0.1:0"})
	if err := broker.AddListener(tcp); err != nil {
		t.Fatal(err)
	}
	if err := broker.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = broker.Close() })
	return broker, "mqtt://" + tcp.Address()
}
