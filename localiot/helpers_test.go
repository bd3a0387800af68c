package localiot

import (
	"context"
	"crypto/tls"
	"errors"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/goleak"
)

// wait bounds every blocking step of a test.
const wait = 5 * time.Second

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// startServer starts a server with opts and stops it when the test ends, failing the
// test if Start does not return nil.
func startServer(t *testing.T, opts Options) *Server {
	t.Helper()
	s, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	runServer(t, s)
	return s
}

// runServer starts s and stops it when the test ends, failing the test if Start does
// not return nil.
func runServer(t *testing.T, s *Server) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Start: %v", err)
			}
		case <-time.After(wait):
			t.Errorf("Start did not return within %v of cancel", wait)
		}
	})
	select {
	case <-s.Ready():
	case err := <-done:
		t.Fatalf("Start: %v", err)
	case <-time.After(wait):
		t.Fatal("server not ready")
	}
}

// poll calls done every 5 ms until it returns true, for at most within, and reports
// whether it did: the package's one bounded wait on a condition that has no channel
// to wait on. waitFor fails the test when it times out.
func poll(within time.Duration, done func() bool) bool {
	for deadline := time.Now().Add(within); ; {
		if done() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond) // the polling interval of a bounded wait
	}
}

// client is a paho client that records what it receives and when it loses its
// connection.
type client struct {
	paho.Client
	msgs chan paho.Message // every message received
	lost chan error        // receives once if the connection drops
	// sessionPresent is the CONNACK's session present flag.
	sessionPresent bool
}

type clientOption func(*paho.ClientOptions)

func withTLS(cfg *tls.Config) clientOption {
	return func(o *paho.ClientOptions) { o.SetTLSConfig(cfg) }
}

// connect connects a client with ID id to broker and disconnects it when the test ends.
func connect(t *testing.T, broker, id string, opts ...clientOption) (*client, error) {
	t.Helper()
	c := &client{msgs: make(chan paho.Message, 256), lost: make(chan error, 1)}
	o := paho.NewClientOptions().
		AddBroker(broker).
		SetClientID(id).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(wait).
		SetWriteTimeout(wait).
		SetKeepAlive(30 * time.Second).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { c.msgs <- m }).
		SetConnectionLostHandler(func(_ paho.Client, err error) { c.lost <- err })
	for _, opt := range opts {
		opt(o)
	}
	c.Client = paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(wait) {
		return nil, errors.New("connect timed out")
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	c.sessionPresent = tok.(*paho.ConnectToken).SessionPresent()
	t.Cleanup(func() { c.Disconnect(0) })
	return c, nil
}

// mustConnect is connect that fails the test on error.
func mustConnect(t *testing.T, broker, id string, opts ...clientOption) *client {
	t.Helper()
	c, err := connect(t, broker, id, opts...)
	if err != nil {
		t.Fatalf("connect %s to %s: %v", id, broker, err)
	}
	return c
}

// subscribe subscribes to filters at the given QoS and returns the SUBACK codes.
func (c *client) subscribe(t *testing.T, qos byte, filters ...string) map[string]byte {
	t.Helper()
	m := make(map[string]byte, len(filters))
	for _, f := range filters {
		m[f] = qos
	}
	tok := c.SubscribeMultiple(m, nil)
	if !tok.WaitTimeout(wait) {
		t.Fatalf("subscribe %v timed out", filters)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("subscribe %v: %v", filters, err)
	}
	return tok.(*paho.SubscribeToken).Result()
}

// mustSubscribe subscribes at QoS 1 and fails the test unless every filter is granted.
func (c *client) mustSubscribe(t *testing.T, filters ...string) {
	t.Helper()
	for f, code := range c.subscribe(t, 1, filters...) {
		if code != 1 {
			t.Fatalf("subscribe %q: SUBACK code %#x, want 1", f, code)
		}
	}
}

// publish publishes at QoS 1 and waits for the PUBACK.
func (c *client) publish(t *testing.T, topic, payload string) {
	t.Helper()
	tok := c.Publish(topic, 1, false, payload)
	if !tok.WaitTimeout(wait) {
		t.Fatalf("publish to %s timed out", topic)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("publish to %s: %v", topic, err)
	}
}

// next returns the next message received, failing the test after wait.
func (c *client) next(t *testing.T) paho.Message {
	t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-time.After(wait):
		t.Fatal("no message received")
		return nil
	}
}

// expect fails the test unless the next message received is payload on topic.
func (c *client) expect(t *testing.T, topic, payload string) {
	t.Helper()
	m := c.next(t)
	if m.Topic() != topic || string(m.Payload()) != payload {
		t.Fatalf("received %.40q on %s, want %.40q on %s", m.Payload(), m.Topic(), payload, topic)
	}
}

// expectLost fails the test unless the client's connection drops within wait.
func (c *client) expectLost(t *testing.T) {
	t.Helper()
	select {
	case <-c.lost:
	case <-time.After(wait):
		t.Fatal("connection not closed by the server")
	}
}

// expectPrefix fails the test unless the next message received is on topic with a
// payload that starts with prefix.
func (c *client) expectPrefix(t *testing.T, topic, prefix string) {
	t.Helper()
	m := c.next(t)
	if m.Topic() != topic || !strings.HasPrefix(string(m.Payload()), prefix) {
		t.Fatalf("received %.60q on %s, want %.60q... on %s", m.Payload(), m.Topic(), prefix, topic)
	}
}
