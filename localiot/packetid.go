package localiot

import (
	"bytes"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// packetIDGuard works around a flaw of the embedded broker. MQTT keeps the packet
// identifiers a client chooses apart from those the server chooses, but the broker
// keeps both in one table, so a client's SUBSCRIBE or UNSUBSCRIBE that happens to
// reuse the identifier of a QoS 1 message the broker is still delivering to it is
// refused with "packet identifier in use" (0x91) — a code MQTT 3.1.1 does not even
// have, and a refusal AWS IoT never gives. Clients number their packets from 1, as the
// broker does, so this happens whenever a client subscribes while messages flow to it.
//
// The guard sets the broker's in-flight entry aside while it handles the client's
// packet and puts it back afterwards. The packets of one client are handled one at a
// time on its own goroutine, so the entry is back before the client's PUBACK for it
// can be read.
type packetIDGuard struct {
	mqtt.HookBase
	mu    sync.Mutex
	aside map[*mqtt.Client]packets.Packet
}

func (*packetIDGuard) ID() string { return "localiot-packet-id-guard" }

func (*packetIDGuard) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnPacketRead, mqtt.OnSubscribed, mqtt.OnUnsubscribed, mqtt.OnDisconnect}, []byte{b})
}

func (g *packetIDGuard) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if t := pk.FixedHeader.Type; t != packets.Subscribe && t != packets.Unsubscribe {
		return pk, nil
	}
	if out, ok := cl.State.Inflight.Get(pk.PacketID); ok && cl.State.Inflight.Delete(pk.PacketID) {
		g.mu.Lock()
		if g.aside == nil {
			g.aside = make(map[*mqtt.Client]packets.Packet)
		}
		g.aside[cl] = out
		g.mu.Unlock()
	}
	return pk, nil
}

func (g *packetIDGuard) restore(cl *mqtt.Client) {
	g.mu.Lock()
	out, ok := g.aside[cl]
	delete(g.aside, cl)
	g.mu.Unlock()
	if ok {
		cl.State.Inflight.Set(out)
	}
}

func (g *packetIDGuard) OnSubscribed(cl *mqtt.Client, _ packets.Packet, _ []byte) { g.restore(cl) }

func (g *packetIDGuard) OnUnsubscribed(cl *mqtt.Client, _ packets.Packet) { g.restore(cl) }

func (g *packetIDGuard) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	g.mu.Lock()
	delete(g.aside, cl)
	g.mu.Unlock()
}
