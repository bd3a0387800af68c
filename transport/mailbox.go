package transport

import "sync"

// mailbox holds the messages waiting for one subscription's handler, in arrival
// order, up to a limit. It grows with what is waiting and lets its memory go once
// drained, so a subscription allowed a large burst (the shadow client's wildcard
// filters take 8192) costs nothing while idle. put never blocks. It is safe for
// concurrent use by the router (put) and the subscription's goroutine (take).
type mailbox struct {
	mu    sync.Mutex
	q     []Message
	head  int           // q[head:] is waiting
	limit int           // most messages waiting at once
	ready chan struct{} // holds a token while messages may be waiting
}

// keptMailbox is the most capacity a drained mailbox keeps for the next burst.
const keptMailbox = 64

func newMailbox(limit int) *mailbox {
	return &mailbox{limit: limit, ready: make(chan struct{}, 1)}
}

// put queues m, or reports false when limit messages are already waiting.
func (b *mailbox) put(m Message) bool {
	b.mu.Lock()
	if len(b.q)-b.head >= b.limit {
		b.mu.Unlock()
		return false
	}
	b.q = append(b.q, m)
	b.mu.Unlock()
	select {
	case b.ready <- struct{}{}:
	default: // a token is already there
	}
	return true
}

// take returns the oldest waiting message, or false when none is waiting.
func (b *mailbox) take() (Message, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.head == len(b.q) {
		return Message{}, false
	}
	m := b.q[b.head]
	b.q[b.head] = Message{} // let the payload go
	b.head++
	if b.head == len(b.q) {
		if cap(b.q) > keptMailbox {
			b.q = nil
		} else {
			b.q = b.q[:0]
		}
		b.head = 0
	}
	return m, true
}

// len returns how many messages are waiting.
func (b *mailbox) len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.q) - b.head
}
