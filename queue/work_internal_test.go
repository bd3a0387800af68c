package queue

import (
	"context"
	"sync"
	"testing"
	"time"
)

// TestWorkAddWakesOneIdleGet: with many workers idle, a key wakes one of them, not
// all (each woken worker takes the lock only to find nothing and sleep again: with 64
// workers that was 63 wasted wakeups per key).
func TestWorkAddWakesOneIdleGet(t *testing.T) {
	const workers = 64
	w := NewWork[int](WorkOptions[int]{})
	ctx, cancel := context.WithCancel(t.Context())
	got := make(chan int, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			if k, ok := w.Get(ctx); ok {
				got <- k
			}
		})
	}
	defer func() { cancel(); wg.Wait() }()
	idle := func() int { w.mu.Lock(); defer w.mu.Unlock(); return len(w.idle) }
	for deadline := time.Now().Add(5 * time.Second); idle() < workers; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d Gets idle after 5 s", idle(), workers)
		}
	}
	w.Add(7)
	select {
	case k := <-got:
		if k != 7 {
			t.Fatalf("Get returned %d, want 7", k)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no Get returned the key")
	}
	// Give woken Gets time to show up; none should have been.
	for end := time.Now().Add(50 * time.Millisecond); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		w.mu.Lock()
		resumes, waiting := w.resumes, len(w.idle)
		w.mu.Unlock()
		if resumes != 1 || waiting != workers-1 {
			t.Fatalf("after one Add: %d Gets woke, %d still idle; want 1 and %d", resumes, waiting, workers-1)
		}
	}
}

// TestWorkGetGivingUpPassesItsWakeOn: a Get woken for a key whose ctx ends before it
// takes the key hands the wake to another idle Get, so the key is not left queued
// with a worker asleep.
func TestWorkGetGivingUpPassesItsWakeOn(t *testing.T) {
	w := NewWork[int](WorkOptions[int]{})
	// One idle Get whose wake token is already there and whose ctx has ended: it is
	// the first in line, as if woken by an Add just as its ctx ended.
	dead, kill := context.WithCancel(t.Context())
	kill()
	w.mu.Lock()
	w.queue = append(w.queue, 1)
	w.dirty[1] = struct{}{}
	other := make(chan struct{}, 1)
	w.idle = append(w.idle, other)
	w.mu.Unlock()
	if _, ok := w.Get(dead); ok {
		t.Fatal("Get with an ended ctx returned a key")
	}
	select {
	case <-other:
	default:
		t.Fatal("the Get that gave up did not wake the next idle one; the key would wait for a worker that sleeps")
	}
}
