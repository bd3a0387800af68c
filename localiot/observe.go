package localiot

import (
	"bytes"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// EventKind says what an Event reports.
type EventKind string

// The kinds of Event.
const (
	EventConnect     EventKind = "connect"
	EventDisconnect  EventKind = "disconnect"
	EventSubscribe   EventKind = "subscribe"
	EventUnsubscribe EventKind = "unsubscribe"
)

// Event is something a client did, as the broker saw it: for tests that assert the
// traffic a client really sends (for example, that a client subscribes once, not per
// request), and for tools that show it.
type Event struct {
	Kind     EventKind
	ClientID string
	// Filters are the topic filters of a SUBSCRIBE or UNSUBSCRIBE, in packet order.
	Filters []string
	// Granted holds the SUBACK code of each filter of a SUBSCRIBE (0 or 1 granted,
	// 0x80 refused).
	Granted []byte
}

// observer is a broker hook that reports client activity to Options.Observe. It
// provides no authorisation methods, so it never changes what a client may do.
type observer struct {
	mqtt.HookBase
	fn func(Event)
}

func (*observer) ID() string { return "localiot-observer" }

func (*observer) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnSessionEstablished, mqtt.OnDisconnect, mqtt.OnSubscribed, mqtt.OnUnsubscribed}, []byte{b})
}

func (o *observer) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	if !cl.Net.Inline {
		o.fn(Event{Kind: EventConnect, ClientID: cl.ID})
	}
}

func (o *observer) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	if !cl.Net.Inline {
		o.fn(Event{Kind: EventDisconnect, ClientID: cl.ID})
	}
}

func (o *observer) OnSubscribed(cl *mqtt.Client, pk packets.Packet, codes []byte) {
	if cl.Net.Inline {
		return
	}
	e := Event{Kind: EventSubscribe, ClientID: cl.ID, Granted: append([]byte(nil), codes...)}
	for _, f := range pk.Filters {
		e.Filters = append(e.Filters, f.Filter)
	}
	o.fn(e)
}

func (o *observer) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	if cl.Net.Inline {
		return
	}
	e := Event{Kind: EventUnsubscribe, ClientID: cl.ID}
	for _, f := range pk.Filters {
		e.Filters = append(e.Filters, f.Filter)
	}
	o.fn(e)
}
