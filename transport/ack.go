package transport

import (
	"sync"
	"sync/atomic"
)

// Ack acknowledges the message to the server (MQTT PUBACK) on behalf of a handler
// subscribed with ManualAck; see ManualAck for when the PUBACK goes out. It may be
// called from any goroutine, at any time: a second call, a call for a message of a
// subscription without ManualAck or of QoS 0, and a call after the connection that
// brought the message was lost do nothing (a resumed persistent session delivers
// the message again instead).
func (m Message) Ack() {
	if m.ack != nil {
		m.ack.done()
	}
}

// pendingAck is the acknowledgement of one QoS 1 message: it is sent when the
// count of those holding it drops to zero. The router holds it while it delivers the
// message, and each ManualAck handler the message reaches holds it until it acks, so
// a handler that acks at once cannot send it before the others have the message.
type pendingAck struct {
	holders atomic.Int32
	send    func()
}

func newPendingAck(send func()) *pendingAck {
	p := &pendingAck{send: send}
	p.holders.Store(1) // the router's, released when delivery is done
	return p
}

// hold adds a holder and returns its handle.
func (p *pendingAck) hold() *ackHandle {
	p.holders.Add(1)
	return &ackHandle{p: p}
}

// release drops one holder, sending the acknowledgement with the last.
func (p *pendingAck) release() {
	if p.holders.Add(-1) == 0 {
		p.send()
	}
}

// ackHandle is one holder's share of a pendingAck; only its first done counts.
type ackHandle struct {
	once sync.Once
	p    *pendingAck
}

func (h *ackHandle) done() { h.once.Do(h.p.release) }
