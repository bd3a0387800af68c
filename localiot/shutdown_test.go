package localiot

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"
)

// connectPacket is an MQTT 3.1.1 CONNECT for a clean session with client ID id.
func connectPacket(id string) []byte {
	body := []byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, byte(len(id) >> 8), byte(len(id))}
	body = append(body, id...)
	return append([]byte{0x10, byte(len(body))}, body...)
}

// Shutting down while clients connect and drop by themselves must not hang: mochi's
// own way of closing a listener's clients takes the clients read lock twice, and a
// dropping client asking for the write lock in between deadlocked both (a CI run hung
// for ten minutes in the reconciler suite that way).
func TestShutdownWhileClientsChurn(t *testing.T) {
	const rounds, churners, perChurner = 4, 6, 200
	for round := range rounds {
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
		addr := s.Endpoints().Plain[len("mqtt://"):]
		var wg sync.WaitGroup
		connected := make(chan struct{}, churners*perChurner)
		for c := range churners {
			wg.Go(func() {
				for i := range perChurner {
					conn, err := net.DialTimeout("tcp", addr, wait)
					if err != nil {
						return // the server is gone
					}
					_ = conn.SetDeadline(time.Now().Add(wait))
					if _, err := conn.Write(connectPacket(fmt.Sprintf("churn-%d-%d", c, i))); err == nil {
						ack := make([]byte, 4)
						if _, err := conn.Read(ack); err == nil {
							connected <- struct{}{}
						}
					}
					_ = conn.Close() // dropped without DISCONNECT: the broker deletes the client
				}
			})
		}
		// Shut down once churn is well under way, so closes and drops overlap.
		for range churners * 5 {
			select {
			case <-connected:
			case <-time.After(wait):
				t.Fatal("no client got CONNACK")
			}
		}
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("round %d: Start = %v, want nil", round, err)
			}
		case <-time.After(2 * wait):
			t.Fatalf("round %d: Start did not return within %v of cancel while clients churned", round, 2*wait)
		}
		wg.Wait()
	}
}

// The listeners disconnect their clients through the server, never through the
// CloseFn mochi hands them, which is the one that can deadlock.
func TestListenersDoNotUseMochisCloseFn(t *testing.T) {
	cred := Credential{AccessKeyID: "AKIDSHUTDOWN", SecretAccessKey: "secret"}
	s := startServer(t, Options{Plain: &PlainListener{}, WebSocket: &WebSocketListener{Credentials: []Credential{cred}}})
	c := mustConnect(t, s.Endpoints().Plain, "c")
	for _, id := range []string{listenerPlain, listenerWS} {
		l, ok := s.broker.Listeners.Get(id)
		if !ok {
			t.Fatalf("listener %s not registered", id)
		}
		l.Close(func(string) { t.Errorf("listener %s called mochi's CloseFn", id) })
	}
	c.expectLost(t)
}
