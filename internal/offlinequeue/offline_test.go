package offlinequeue

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestOfflineSeedExample is the example in the README of the AWS IoT Device SDK for
// Python v1: a 5-slot queue receives 7 offline publishes.
func TestOfflineSeedExample(t *testing.T) {
	reqs := []string{"pub_req1", "pub_req2", "pub_req3", "pub_req4", "pub_req5", "pub_req6", "pub_req7"}
	tests := []struct {
		policy      DropPolicy
		want        []string
		wantDropped []string // reported as evicted by Push (DropOldest)
		wantRefused []string // refused with ErrFull (DropNewest)
	}{
		{DropOldest, reqs[2:], reqs[:2], nil},
		{DropNewest, reqs[:5], nil, reqs[5:]},
	}
	for _, tt := range tests {
		t.Run(tt.policy.String(), func(t *testing.T) {
			q, err := NewOffline[string](5, tt.policy)
			if err != nil {
				t.Fatal(err)
			}
			var dropped, refused []string
			for _, r := range reqs {
				ev, ok, err := q.Push(r)
				switch {
				case errors.Is(err, ErrFull):
					refused = append(refused, r)
				case err != nil:
					t.Fatalf("Push(%s): %v", r, err)
				case ok:
					dropped = append(dropped, ev)
				}
			}
			if diff := cmp.Diff(tt.want, q.Snapshot()); diff != "" {
				t.Errorf("queue (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantDropped, dropped); diff != "" {
				t.Errorf("evicted (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantRefused, refused); diff != "" {
				t.Errorf("refused (-want +got):\n%s", diff)
			}
		})
	}
}

// TestOfflineFullErrorSaysSo: a DropNewest refusal wraps ErrFull and says how full
// the queue is; a DropOldest push that evicts returns no error at all (the Python SDK
// v1 reports "queue full" although the new message was queued).
func TestOfflineFullErrorSaysSo(t *testing.T) {
	q, _ := NewOffline[int](1, DropNewest)
	if _, _, err := q.Push(1); err != nil {
		t.Fatal(err)
	}
	_, _, err := q.Push(2)
	if !errors.Is(err, ErrFull) {
		t.Fatalf("Push on full DropNewest = %v, want ErrFull", err)
	}
	if got, want := err.Error(), "new item refused, 1 of 1 slots in use: transport: offline queue full"; got != want {
		t.Errorf("error = %q, want %q", got, want)
	}

	q, _ = NewOffline[int](1, DropOldest)
	_, _, _ = q.Push(1)
	ev, dropped, err := q.Push(2)
	if err != nil || !dropped || ev != 1 {
		t.Fatalf("Push on full DropOldest = (%v, %v, %v), want (1, true, nil)", ev, dropped, err)
	}
}

func TestOfflineSizes(t *testing.T) {
	q, err := NewOffline[int](Disabled, DropNewest)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := q.Push(1); !errors.Is(err, ErrDisabled) {
		t.Errorf("Push on disabled queue = %v, want ErrDisabled", err)
	}

	q, _ = NewOffline[int](Unbounded, DropNewest)
	for i := range 1000 {
		if _, _, err := q.Push(i); err != nil {
			t.Fatalf("Push(%d) on unbounded queue: %v", i, err)
		}
	}
	if q.Len() != 1000 {
		t.Errorf("Len = %d, want 1000", q.Len())
	}
	for i := range 1000 {
		if got, ok := q.Pop(); !ok || got != i {
			t.Fatalf("Pop = %d, %v; want %d, true", got, ok, i)
		}
	}
	if _, ok := q.Pop(); ok {
		t.Error("Pop on empty queue reported an item")
	}

	for _, bad := range []struct {
		size   int
		policy DropPolicy
	}{{-2, DropNewest}, {5, DropPolicy(7)}} {
		if _, err := NewOffline[int](bad.size, bad.policy); err == nil {
			t.Errorf("NewOffline(%d, %v) succeeded", bad.size, bad.policy)
		}
	}
}

// TestOfflineRequeue: an item handed back after a failed delivery comes out first,
// and is never lost even when the queue filled up meanwhile.
func TestOfflineRequeue(t *testing.T) {
	q, _ := NewOffline[string](2, DropNewest)
	_, _, _ = q.Push("a")
	_, _, _ = q.Push("b")
	a, _ := q.Pop()
	_, _, _ = q.Push("c") // fills the slot "a" left
	q.Requeue(a)
	if diff := cmp.Diff([]string{"a", "b", "c"}, q.Clear()); diff != "" {
		t.Errorf("after requeue (-want +got):\n%s", diff)
	}
	if q.Len() != 0 {
		t.Errorf("Len after Clear = %d", q.Len())
	}
}

// TestOfflineWrapAround exercises the ring buffer past its initial capacity.
func TestOfflineWrapAround(t *testing.T) {
	q, _ := NewOffline[int](Unbounded, DropNewest)
	next, want := 0, 0
	for round := range 50 {
		for range round%7 + 1 {
			_, _, _ = q.Push(next)
			next++
		}
		for range round%5 + 1 {
			got, ok := q.Pop()
			if !ok {
				break
			}
			if got != want {
				t.Fatalf("Pop = %d, want %d", got, want)
			}
			want++
		}
	}
}

func TestOfflineConcurrent(t *testing.T) {
	q, _ := NewOffline[string](Unbounded, DropNewest)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 250 {
				_, _, _ = q.Push(fmt.Sprint(w, "-", i))
			}
		})
	}
	wg.Wait()
	if q.Len() != 1000 {
		t.Fatalf("Len = %d, want 1000", q.Len())
	}
	// Each producer's items stay in its own order.
	last := map[string]int{}
	for _, s := range q.Clear() {
		var w, i int
		if _, err := fmt.Sscanf(s, "%d-%d", &w, &i); err != nil {
			t.Fatal(err)
		}
		if prev, ok := last[fmt.Sprint(w)]; ok && i != prev+1 {
			t.Fatalf("producer %d: %d after %d", w, i, prev)
		}
		last[fmt.Sprint(w)] = i
	}
}
