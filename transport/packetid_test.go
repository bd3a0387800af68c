package transport_test

import (
	"context"
	"sync/atomic"
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/shadowsync/shadowsync/transport"
)

// inUseHook makes the broker answer the first SUBSCRIBE with 0x91, "packet
// identifier in use", as mochi-mqtt does when a client's SUBSCRIBE reuses the
// identifier of a delivery the broker has in flight to it.
type inUseHook struct {
	allowAll
	subscribes atomic.Int32
}

func (h *inUseHook) ID() string { return "in-use" }

func (h *inUseHook) Provides(b byte) bool {
	switch b {
	case mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnSubscribe, mqtt.OnSubscribed:
		return true
	}
	return false
}

func (h *inUseHook) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if h.subscribes.Add(1) == 1 { // a delivery in flight under the same identifier
		cl.State.Inflight.Set(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, PacketID: pk.PacketID})
	}
	return pk
}

func (h *inUseHook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, _ []byte) {
	cl.State.Inflight.Delete(pk.PacketID)
}

// A SUBSCRIBE refused with 0x91 is asked for again under a new identifier, not
// reported as refused: the filter was never the problem.
func TestSubscribeRetriesPacketIDInUse(t *testing.T) {
	hook := new(inUseHook)
	broker, endpoint := startBareBroker(t, hook)

	c := dialConn(t, transport.Config{Endpoint: endpoint, ClientID: "in-use"})
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	col := newCollector()
	if _, err := c.Subscribe(ctx, "busy/#", col, transport.QoS(1)); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	if n := hook.subscribes.Load(); n != 2 {
		t.Errorf("the broker saw %d SUBSCRIBEs, want 2 (the refused one and its retry)", n)
	}
	if err := broker.Publish("busy/x", []byte("hi"), false, 1); err != nil {
		t.Fatal(err)
	}
	if m := col.next(t); m.Topic != "busy/x" {
		t.Errorf("got %s, want busy/x", m.Topic)
	}
}
