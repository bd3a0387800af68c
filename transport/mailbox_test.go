package transport

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// A mailbox keeps order, refuses past its limit, and lets a burst's memory go once
// drained.
func TestMailboxOrderLimitAndMemory(t *testing.T) {
	b := newMailbox(1000)
	for i := range 1000 {
		if !b.put(Message{Topic: fmt.Sprint(i)}) {
			t.Fatalf("put %d refused below the limit", i)
		}
	}
	if b.put(Message{Topic: "over"}) {
		t.Error("put past the limit accepted")
	}
	for i := range 1000 {
		m, ok := b.take()
		if !ok || m.Topic != fmt.Sprint(i) {
			t.Fatalf("take %d = %q, %v", i, m.Topic, ok)
		}
	}
	if _, ok := b.take(); ok {
		t.Error("take from an empty mailbox returned a message")
	}
	if c := cap(b.q); c > keptMailbox {
		t.Errorf("a drained mailbox keeps capacity %d, want at most %d", c, keptMailbox)
	}
	if !b.put(Message{Topic: "again"}) {
		t.Error("put refused after draining")
	}
}

// One goroutine taking while others put sees every message once, each putter's in
// order, and is woken for every burst.
func TestMailboxConcurrent(t *testing.T) {
	b := newMailbox(1 << 20)
	const putters, each = 4, 2000
	var wg sync.WaitGroup
	for p := range putters {
		wg.Go(func() {
			for i := range each {
				b.put(Message{Topic: fmt.Sprint(p), Payload: []byte{byte(i), byte(i >> 8)}})
			}
		})
	}
	next := make([]int, putters)
	got := 0
	deadline := time.After(10 * time.Second)
	for got < putters*each {
		select {
		case <-b.ready:
		case <-deadline:
			t.Fatalf("took %d of %d messages; no wake-up for the rest", got, putters*each)
		}
		for {
			m, ok := b.take()
			if !ok {
				break
			}
			var p int
			fmt.Sscan(m.Topic, &p)
			if i := int(m.Payload[0]) | int(m.Payload[1])<<8; i != next[p] {
				t.Fatalf("putter %d: message %d after %d", p, i, next[p]-1)
			}
			next[p]++
			got++
		}
	}
	wg.Wait()
}
