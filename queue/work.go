package queue

import (
	"container/heap"
	"context"
	"slices"
	"sync"
	"time"
)

// WorkOptions configures NewWork. The zero value works.
type WorkOptions[K comparable] struct {
	// RateLimiter decides the delays of AddRateLimited and keeps the failure counts behind
	// Forget and NumRequeues. Nil means NewRateLimiter[K](RateLimitOptions{}): 100 ms per key
	// doubling to 5 min, under an overall 10 retries per second with a burst of 100.
	RateLimiter RateLimiter[K]
}

// Work is a rate-limited, de-duplicating queue of keys with controller-runtime semantics:
//
//   - a key is never handed to two workers at once: once Get returns it, it is not handed out
//     again until Done is called for it;
//   - adding a key that is already queued does nothing: bursts of adds coalesce into one run;
//   - adding a key while a worker has it marks it dirty, and Done queues it once more;
//   - otherwise keys come out in the order they became ready.
//
// Work holds keys, not events: a worker should handle the latest state of its key, so a key
// that ran once for many adds has missed nothing.
//
// Work is safe for concurrent use and starts no goroutines: keys added with AddAfter wait in
// a heap that every call checks, and a Get with nothing ready sleeps on a timer for the
// earliest deadline. Create one with NewWork; the zero Work is not usable.
type Work[K comparable] struct {
	// limiter is set once by NewWork; it has its own lock and is never called under mu.
	limiter RateLimiter[K]

	mu sync.Mutex
	// queue holds the keys ready to be handed out, oldest first. A key appears in it at most
	// once; every key in queue is in dirty and none is in processing.
	queue []K
	// dirty holds every key that needs a run: all of queue, plus keys in processing that were
	// added again while a worker had them (Done moves those to queue).
	dirty map[K]struct{}
	// processing holds the keys Get has handed out and Done has not yet returned.
	processing map[K]struct{}
	// delayed holds keys added with AddAfter whose deadline has not yet been reached, earliest
	// first (ties in order of addition). A key appears in it at most once; delayedByKey maps
	// each of its keys to its entry. Both are empty once shuttingDown is set.
	delayed      delayHeap[K]
	delayedByKey map[K]*delayedKey[K]
	// seq numbers delayed entries so equal deadlines keep their order of addition.
	seq uint64
	// shuttingDown is set by ShutDown and never cleared; once set, adds are ignored.
	shuttingDown bool
	// idle are the Gets blocked with nothing to hand out, longest waiting first, each
	// with a channel (buffered, for one token) on which a key joining queue wakes it:
	// one key, one Get, rather than every worker for every key.
	idle []chan struct{}
	// changed is closed, and replaced by a fresh channel, to wake every blocked Get and
	// ShutDownWithDrain at once: when the earliest deadline moves, when ShutDown
	// starts, and when the queue goes idle after ShutDown. Never nil.
	changed chan struct{}
	// resumes counts the times a blocked Get woke up, for the tests.
	resumes int
}

// NewWork returns an empty Work configured by opts. It starts no goroutines.
func NewWork[K comparable](opts WorkOptions[K]) *Work[K] {
	limiter := opts.RateLimiter
	if limiter == nil {
		// The default options are valid, so this cannot fail.
		limiter, _ = NewRateLimiter[K](RateLimitOptions{})
	}
	return &Work[K]{
		limiter:      limiter,
		dirty:        make(map[K]struct{}),
		processing:   make(map[K]struct{}),
		delayedByKey: make(map[K]*delayedKey[K]),
		changed:      make(chan struct{}),
	}
}

// Add queues key to be handed out by Get. It does nothing if key is already queued or after
// ShutDown; if a worker has key, key is queued again when that worker calls Done.
func (w *Work[K]) Add(key K) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.shuttingDown {
		return
	}
	w.promoteLocked()
	w.addLocked(key)
}

// AddAfter queues key once d has passed; d <= 0 is the same as Add. If key is already waiting
// for a deadline, the earlier deadline wins. A key that is waiting may also be added (and
// handled) meanwhile; it is then queued once more at its deadline. Keys still waiting when
// ShutDown is called are dropped, and ShutDown reports how many.
func (w *Work[K]) AddAfter(key K, d time.Duration) {
	if d <= 0 {
		w.Add(key)
		return
	}
	at := time.Now().Add(d)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.shuttingDown {
		return
	}
	w.promoteLocked()
	if e, ok := w.delayedByKey[key]; ok {
		if !at.Before(e.at) {
			return
		}
		e.at = at
		heap.Fix(&w.delayed, e.index)
	} else {
		w.seq++
		e := &delayedKey[K]{key: key, at: at, seq: w.seq}
		heap.Push(&w.delayed, e)
		w.delayedByKey[key] = e
	}
	if w.delayed[0].key == key {
		// The earliest deadline moved: blocked Gets must reset their timers.
		w.broadcastLocked()
	}
}

// AddRateLimited queues key after the delay the RateLimiter chooses for it, which grows with
// each call until Forget. Call it when handling key failed.
func (w *Work[K]) AddRateLimited(key K) {
	if w.ShuttingDown() {
		return // Do not count a failure for a retry that will never run.
	}
	w.AddAfter(key, w.limiter.When(key))
}

// Forget resets key's backoff, so its next AddRateLimited waits the shortest delay again.
// Call it when handling key succeeded. It does not remove key from the queue.
func (w *Work[K]) Forget(key K) {
	w.limiter.Forget(key)
}

// NumRequeues returns how many times key was rate-limited since it was last forgotten.
func (w *Work[K]) NumRequeues(key K) int {
	return w.limiter.NumRequeues(key)
}

// Get blocks until a key is ready and returns it with true; the caller then owns key until it
// calls Done(key). Get returns false when ctx ends (queued keys stay queued) or when the queue
// has been shut down and nothing is left queued.
func (w *Work[K]) Get(ctx context.Context) (K, bool) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	w.mu.Lock()
	for {
		if ctx.Err() != nil {
			// A key this Get was woken for goes to the next idle one.
			w.wakeLocked()
			w.mu.Unlock()
			var zero K
			return zero, false
		}
		w.promoteLocked()
		if len(w.queue) > 0 {
			key := w.queue[0]
			var zero K
			w.queue[0] = zero // Let the backing array drop its reference.
			w.queue = w.queue[1:]
			delete(w.dirty, key)
			w.processing[key] = struct{}{}
			w.mu.Unlock()
			return key, true
		}
		if w.shuttingDown {
			w.mu.Unlock()
			var zero K
			return zero, false
		}
		var deadline <-chan time.Time
		if len(w.delayed) > 0 {
			wait := time.Until(w.delayed[0].at)
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			deadline = timer.C
		}
		changed := w.changed
		wake := make(chan struct{}, 1)
		w.idle = append(w.idle, wake)
		w.mu.Unlock()
		select {
		case <-wake:
		case <-changed:
		case <-deadline:
		case <-ctx.Done():
		}
		w.mu.Lock()
		w.resumes++
		w.dropIdleLocked(wake)
	}
}

// wakeLocked wakes the longest waiting idle Get, if any, for a key that joined queue.
// w.mu must be held.
func (w *Work[K]) wakeLocked() {
	if len(w.queue) == 0 || len(w.idle) == 0 {
		return
	}
	wake := w.idle[0]
	w.idle[0] = nil
	w.idle = w.idle[1:]
	wake <- struct{}{} // buffered for this one token: never blocks
}

// dropIdleLocked removes wake from the idle Gets, unless a key took it off already.
// w.mu must be held.
func (w *Work[K]) dropIdleLocked(wake chan struct{}) {
	if i := slices.Index(w.idle, wake); i >= 0 {
		w.idle = slices.Delete(w.idle, i, i+1) // clears the freed slot: no stale channel kept
	}
}

// Done tells the queue that the worker has finished with key, which Get handed out. If key was
// added meanwhile, it is queued again. Done for a key that is not being processed does nothing.
func (w *Work[K]) Done(key K) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.processing[key]; !ok {
		return
	}
	// Promote first: a due delayed add of key must mark it dirty, not queue it a second time.
	w.promoteLocked()
	delete(w.processing, key)
	if _, ok := w.dirty[key]; ok {
		w.queue = append(w.queue, key)
		w.wakeLocked()
	} else if w.shuttingDown && len(w.processing) == 0 && len(w.queue) == 0 {
		w.broadcastLocked() // Wake ShutDownWithDrain.
	}
}

// Len returns how many keys are ready to be handed out. Keys being processed and keys waiting
// for an AddAfter deadline are not counted.
func (w *Work[K]) Len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.promoteLocked()
	return len(w.queue)
}

// ShutDown stops the queue from accepting adds and returns how many AddAfter (and
// AddRateLimited) keys it dropped because their deadline had not come; the caller should log
// them. Keys already queued are still handed out: Get returns them, then false. A key being
// processed that was added again before ShutDown is still queued by its Done. Calling ShutDown
// again does nothing and returns 0.
func (w *Work[K]) ShutDown() (dropped int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.shuttingDown {
		return 0
	}
	w.promoteLocked() // Keys whose deadline has passed are ready, not dropped.
	w.shuttingDown = true
	dropped = len(w.delayed)
	w.delayed = nil
	clear(w.delayedByKey)
	w.broadcastLocked()
	return dropped
}

// ShutDownWithDrain calls ShutDown, then waits until every queued key has been handed out and
// every handed-out key is Done, so in-flight work finishes before the caller moves on. It
// needs workers calling Get to empty the queue. It returns what ShutDown dropped, and ctx's
// error if ctx ends first.
func (w *Work[K]) ShutDownWithDrain(ctx context.Context) (dropped int, err error) {
	dropped = w.ShutDown()
	w.mu.Lock()
	for len(w.queue) > 0 || len(w.processing) > 0 {
		changed := w.changed
		w.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return dropped, ctx.Err()
		}
		w.mu.Lock()
	}
	w.mu.Unlock()
	return dropped, nil
}

// ShuttingDown reports whether ShutDown has been called.
func (w *Work[K]) ShuttingDown() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.shuttingDown
}

// addLocked marks key dirty and queues it unless it is already dirty or being processed.
// w.mu must be held.
func (w *Work[K]) addLocked(key K) {
	if _, ok := w.dirty[key]; ok {
		return
	}
	w.dirty[key] = struct{}{}
	if _, ok := w.processing[key]; ok {
		return
	}
	w.queue = append(w.queue, key)
	w.wakeLocked()
}

// promoteLocked adds every delayed key whose deadline has passed, earliest first. Every call
// that reads or grows queue runs it first, so queue order follows the time keys became ready.
// w.mu must be held.
func (w *Work[K]) promoteLocked() {
	if len(w.delayed) == 0 {
		return
	}
	now := time.Now()
	for len(w.delayed) > 0 && !w.delayed[0].at.After(now) {
		e := heap.Pop(&w.delayed).(*delayedKey[K])
		delete(w.delayedByKey, e.key)
		w.addLocked(e.key)
	}
}

// broadcastLocked wakes every goroutine waiting on w.changed. w.mu must be held.
func (w *Work[K]) broadcastLocked() {
	close(w.changed)
	w.changed = make(chan struct{})
}

// delayedKey is a key waiting for its AddAfter deadline.
type delayedKey[K comparable] struct {
	key K
	at  time.Time
	seq uint64
	// index is the entry's position in delayHeap, kept by the heap methods for heap.Fix.
	index int
}

// delayHeap orders delayed keys by deadline, then by order of addition. It implements
// heap.Interface; use it only through container/heap.
type delayHeap[K comparable] []*delayedKey[K]

func (h delayHeap[K]) Len() int { return len(h) }

func (h delayHeap[K]) Less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	return h[i].seq < h[j].seq
}

func (h delayHeap[K]) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}

func (h *delayHeap[K]) Push(x any) {
	e := x.(*delayedKey[K])
	e.index = len(*h)
	*h = append(*h, e)
}

func (h *delayHeap[K]) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return e
}
