package localiot

import (
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// slowEnding holds up the end of the first connection of one client ID where the
// broker removes its subscriptions, as a loaded machine may: the window in which a
// new connection with the same client ID arrives.
type slowEnding struct {
	mqtt.HookBase
	id      string
	armed   atomic.Bool
	holding chan struct{} // closed when the ending is held
	release chan struct{} // closed by the test; the hold also ends after a while
	done    chan struct{} // closed when the hold is over
}

func (*slowEnding) ID() string { return "test-slow-ending" }

func (*slowEnding) Provides(b byte) bool { return b == mqtt.OnUnsubscribed }

func (h *slowEnding) OnUnsubscribed(cl *mqtt.Client, _ packets.Packet) {
	if cl.ID != h.id || !h.armed.CompareAndSwap(true, false) {
		return
	}
	close(h.holding)
	defer close(h.done)
	select {
	case <-h.release:
	case <-time.After(500 * time.Millisecond):
	}
}

// A client that reconnects with the same client ID while its old connection is still
// ending must keep what it subscribes to on the new one: the old connection's ending
// must not remove the new connection's subscriptions or registration (the device
// then stays connected and receives nothing).
func TestReconnectWhileOldConnectionEndsKeepsSubscriptions(t *testing.T) {
	s := startServer(t, Options{})
	hold := &slowEnding{id: "dev-1", holding: make(chan struct{}), release: make(chan struct{}), done: make(chan struct{})}
	if err := s.broker.AddHook(hold, nil); err != nil {
		t.Fatal(err)
	}
	plain := s.Endpoints().Plain
	op := mustConnect(t, plain, "operator")

	old := mustConnect(t, plain, "dev-1")
	old.mustSubscribe(t, "t/dev-1")
	op.publish(t, "t/dev-1", "before")
	old.expect(t, "t/dev-1", "before")

	hold.armed.Store(true)
	old.Disconnect(0)
	select {
	case <-hold.holding:
	case <-time.After(wait):
		t.Fatal("the old connection's ending never reached the broker's unsubscribe")
	}
	connected := make(chan *client, 1)
	go func() {
		c, err := connect(t, plain, "dev-1")
		if err != nil {
			t.Errorf("reconnect: %v", err)
			c = nil
		}
		connected <- c
	}()
	var c *client
	select {
	case c = <-connected:
	case <-time.After(2 * wait):
		t.Fatal("reconnect did not finish")
	}
	if c == nil {
		return
	}
	c.mustSubscribe(t, "t/dev-1")
	close(hold.release)
	// The old connection's ending goes on from here (the broker drops the client ID's
	// registration right after the hold).
	select {
	case <-hold.done:
	case <-time.After(wait):
		t.Fatal("the hold did not end")
	}
	for i := range 3 {
		payload := []string{"after-1", "after-2", "after-3"}[i]
		op.publish(t, "t/dev-1", payload)
		c.expect(t, "t/dev-1", payload)
	}
}
