// Package offlinequeue is the bounded FIFO that holds a connection's publishes while
// it is down; package transport configures it through Config.OfflineQueueSize and
// Config.OfflineDropPolicy.
package offlinequeue

import (
	"errors"
	"fmt"
	"sync"
)

// Sizes with a special meaning for NewOffline.
const (
	// DefaultOfflineSize is the offline queue size the AWS IoT Device SDK for Python v1
	// documents.
	DefaultOfflineSize = 20
	// Unbounded makes an Offline queue without a size limit.
	Unbounded = -1
	// Disabled makes an Offline queue that refuses every item.
	Disabled = 0
)

var (
	// ErrFull is returned by Push when a DropNewest queue is full and the new item
	// was refused. Match it with errors.Is.
	ErrFull = errors.New("transport: offline queue full")
	// ErrDisabled is returned by Push on a queue of size Disabled (0).
	ErrDisabled = errors.New("transport: offline queueing disabled")
)

// DropPolicy says which item a full Offline queue gives up.
type DropPolicy int

const (
	// DropNewest refuses the item being pushed and keeps the queue as it is. It is
	// the default because it never loses an item the caller was told is queued.
	DropNewest DropPolicy = iota
	// DropOldest evicts the item at the head to make room for the new one, which is
	// always queued.
	DropOldest
)

// String returns "DropNewest" or "DropOldest".
func (p DropPolicy) String() string {
	switch p {
	case DropNewest:
		return "DropNewest"
	case DropOldest:
		return "DropOldest"
	}
	return fmt.Sprintf("DropPolicy(%d)", int(p))
}

// Offline is a bounded FIFO of items (publishes, subscribe or unsubscribe requests)
// made while a connection is down, drained in order once it is back. When full it
// applies its DropPolicy and says exactly which item was given up: Push refuses the
// new item with ErrFull (DropNewest), or queues it and returns the evicted oldest item
// (DropOldest) — never a "queue full" error for an item that was in fact queued.
//
// An Offline is safe for concurrent use. Its zero value is not usable; call NewOffline.
type Offline[T any] struct {
	size   int // > 0 bounded, Unbounded, or Disabled
	policy DropPolicy

	mu sync.Mutex
	// items is a ring buffer; head indexes the oldest item, n counts live items.
	// Invariant: n <= len(items); items outside the live range are zero values so
	// that evicted items can be collected.
	items []T
	head  int
	n     int
}

// NewOffline returns an empty queue holding at most size items: size > 0 is a
// bound, Unbounded (-1) means no bound, Disabled (0) refuses everything. Any other
// negative size, or an unknown policy, is an error.
func NewOffline[T any](size int, policy DropPolicy) (*Offline[T], error) {
	if size < Unbounded {
		return nil, fmt.Errorf("offline queue size %d: want > 0, %d (unbounded) or %d (disabled)", size, Unbounded, Disabled)
	}
	if policy != DropNewest && policy != DropOldest {
		return nil, fmt.Errorf("unknown offline queue drop policy %d", int(policy))
	}
	return &Offline[T]{size: size, policy: policy}, nil
}

// Size returns the bound given to NewOffline: > 0, Unbounded or Disabled.
func (q *Offline[T]) Size() int { return q.size }

// Policy returns the queue's DropPolicy.
func (q *Offline[T]) Policy() DropPolicy { return q.policy }

// Len returns how many items are queued.
func (q *Offline[T]) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n
}

// Push appends item at the tail.
//
// On a full DropNewest queue item is refused: err wraps ErrFull and the queue is
// unchanged. On a full DropOldest queue the oldest item is removed and returned as
// evicted with dropped true, and item is queued (err is nil). On a Disabled queue
// err is ErrDisabled.
func (q *Offline[T]) Push(item T) (evicted T, dropped bool, err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case q.size == Disabled:
		return evicted, false, ErrDisabled
	case q.size > 0 && q.n >= q.size:
		if q.policy == DropNewest {
			return evicted, false, fmt.Errorf("new item refused, %d of %d slots in use: %w", q.n, q.size, ErrFull)
		}
		evicted, _ = q.popLocked()
		dropped = true
	}
	q.growLocked()
	q.items[(q.head+q.n)%len(q.items)] = item
	q.n++
	return evicted, dropped, nil
}

// Pop removes and returns the item at the head; ok is false when the queue is empty.
func (q *Offline[T]) Pop() (item T, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.popLocked()
}

// Requeue puts item, taken by Pop but not delivered, back at the head so it is the
// next one out. It never drops anything, so a bounded queue may hold one item more
// than its size until the next Pop; a drainer that requeues at most the one item it
// holds keeps that excess to one.
func (q *Offline[T]) Requeue(item T) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.growLocked()
	q.head = (q.head - 1 + len(q.items)) % len(q.items)
	q.items[q.head] = item
	q.n++
}

// Clear empties the queue and returns what it held, oldest first.
func (q *Offline[T]) Clear() []T {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([]T, 0, q.n)
	for q.n > 0 {
		item, _ := q.popLocked()
		out = append(out, item)
	}
	return out
}

// Snapshot returns the queued items, oldest first, leaving the queue unchanged.
func (q *Offline[T]) Snapshot() []T {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([]T, q.n)
	for i := range q.n {
		out[i] = q.items[(q.head+i)%len(q.items)]
	}
	return out
}

func (q *Offline[T]) popLocked() (item T, ok bool) {
	if q.n == 0 {
		return item, false
	}
	var zero T
	item = q.items[q.head]
	q.items[q.head] = zero
	q.head = (q.head + 1) % len(q.items)
	q.n--
	return item, true
}

// growLocked makes room for at least one more item.
func (q *Offline[T]) growLocked() {
	if q.n < len(q.items) {
		return
	}
	grown := make([]T, max(8, 2*len(q.items)))
	for i := range q.n {
		grown[i] = q.items[(q.head+i)%len(q.items)]
	}
	q.items, q.head = grown, 0
}
