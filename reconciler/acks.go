package reconciler

import (
	"container/list"
	"sync"

	"github.com/shadowsync/shadowsync/shadowstate"
)

// DefaultMaxUnacked is Fleet.MaxUnacked's default: below AWS IoT's 100 unacknowledged
// messages in flight per client, so that the replies to the controller's own shadow
// requests still get through while events wait for their reconcile.
const DefaultMaxUnacked = 64

// ackBook holds the acknowledgements of the fleet events waiting for a reconcile
// (Fleet.PersistentSession), by shadow. The events of one shadow coalesce into one
// queued reconcile, which takes all of them when it starts and acknowledges them when
// it ends. At most max are held: past it the oldest is acknowledged at once, so a
// broker that caps unacknowledged messages never stops delivering for want of an
// acknowledgement, at the price of that event's protection against a crash. It is safe
// for concurrent use.
type ackBook struct {
	max int

	mu    sync.Mutex
	byID  map[shadowstate.ID][]*list.Element // element values are *heldAck
	order list.List                          // oldest first
}

type heldAck struct {
	id  shadowstate.ID
	ack func()
}

func newAckBook(max int) *ackBook {
	return &ackBook{max: max, byID: make(map[shadowstate.ID][]*list.Element)}
}

// hold keeps ack until a reconcile of id takes it. It returns how many acks it
// acknowledged early to stay within the bound.
func (b *ackBook) hold(id shadowstate.ID, ack func()) int {
	var early []func()
	b.mu.Lock()
	b.byID[id] = append(b.byID[id], b.order.PushBack(&heldAck{id: id, ack: ack}))
	for b.order.Len() > b.max {
		h := b.order.Remove(b.order.Front()).(*heldAck)
		els := b.byID[h.id][1:] // a shadow's oldest is the book's oldest of that shadow
		if len(els) == 0 {
			delete(b.byID, h.id)
		} else {
			b.byID[h.id] = els
		}
		early = append(early, h.ack)
	}
	b.mu.Unlock()
	for _, ack := range early {
		ack()
	}
	return len(early)
}

// take removes and returns the acks held for id.
func (b *ackBook) take(id shadowstate.ID) []func() {
	b.mu.Lock()
	defer b.mu.Unlock()
	els := b.byID[id]
	if len(els) == 0 {
		return nil
	}
	delete(b.byID, id)
	acks := make([]func(), len(els))
	for i, el := range els {
		acks[i] = b.order.Remove(el).(*heldAck).ack
	}
	return acks
}

// len returns how many acks are held.
func (b *ackBook) len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.order.Len()
}
