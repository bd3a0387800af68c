package queue

import (
	"context"
	"errors"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newTestWork returns a Work whose RateLimiter is the default per-key backoff with the
// overall token bucket turned off, so delays depend on the key alone.
func newTestWork[K comparable](t *testing.T) *Work[K] {
	t.Helper()
	limiter, err := NewRateLimiter[K](RateLimitOptions{QPS: math.Inf(1)})
	if err != nil {
		t.Fatal(err)
	}
	return NewWork(WorkOptions[K]{RateLimiter: limiter})
}

// mustGet calls Get and fails the test unless it returns want.
func mustGet[K comparable](t *testing.T, w *Work[K], want K) {
	t.Helper()
	got, ok := w.Get(t.Context())
	if !ok || got != want {
		t.Fatalf("Get() = %v, %v; want %v, true", got, ok, want)
	}
}

// drainWork shuts w down and returns every key Get still hands out, calling Done for each.
func drainWork[K comparable](t *testing.T, w *Work[K]) []K {
	t.Helper()
	w.ShutDown()
	var got []K
	for {
		key, ok := w.Get(t.Context())
		if !ok {
			return got
		}
		got = append(got, key)
		w.Done(key)
	}
}

func TestWorkOrderAndCoalescing(t *testing.T) {
	tests := []struct {
		name string
		add  func(w *Work[string])
		want []string
	}{
		{
			name: "fifo",
			add:  func(w *Work[string]) { w.Add("a"); w.Add("b"); w.Add("c") },
			want: []string{"a", "b", "c"},
		},
		{
			name: "adds of a queued key coalesce and keep its place",
			add: func(w *Work[string]) {
				for _, k := range []string{"a", "b", "a", "c", "b", "a"} {
					w.Add(k)
				}
			},
			want: []string{"a", "b", "c"},
		},
		{
			name: "AddAfter without delay is Add",
			add: func(w *Work[string]) {
				w.Add("a")
				w.AddAfter("b", 0)
				w.AddAfter("c", -time.Second)
				w.AddAfter("a", 0)
			},
			want: []string{"a", "b", "c"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newTestWork[string](t)
			tt.add(w)
			if got := w.Len(); got != len(tt.want) {
				t.Errorf("Len() = %d, want %d", got, len(tt.want))
			}
			if diff := cmp.Diff(tt.want, drainWork(t, w)); diff != "" {
				t.Errorf("keys handed out (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWorkDirtyWhileProcessingRunsOnceMore(t *testing.T) {
	w := newTestWork[string](t)
	w.Add("a")
	mustGet(t, w, "a")
	for range 3 {
		w.Add("a") // While a worker has "a": marks it dirty, does not queue it.
	}
	if got := w.Len(); got != 0 {
		t.Fatalf("Len() while processing = %d, want 0", got)
	}
	w.Add("b")
	w.Done("a")
	if got := w.Len(); got != 2 {
		t.Fatalf("Len() after Done = %d, want 2", got)
	}
	mustGet(t, w, "b")
	mustGet(t, w, "a")
	w.Done("b")
	w.Done("a")
	w.Done("a") // Not being processed: a no-op.
	if diff := cmp.Diff([]string(nil), drainWork(t, w)); diff != "" {
		t.Errorf("keys left after the rerun (-want +got):\n%s", diff)
	}
}

// TestWorkNeverTwoWorkersOnOneKey runs many workers against many concurrent adds of a few
// keys, with real scheduling, and checks that no key is ever held by two workers and that
// every key's last add is followed by a run that sees it.
func TestWorkNeverTwoWorkersOnOneKey(t *testing.T) {
	const workers, producers, keys, addsEach = 8, 4, 16, 2000
	w := newTestWork[int](t)
	var (
		inflight [keys]atomic.Int32
		added    [keys]atomic.Int64 // Generation: bumped before every Add of the key.
		seen     [keys]atomic.Int64 // Generation a run of the key observed when it started.
		runs     atomic.Int64
	)
	var workerWG sync.WaitGroup
	for range workers {
		workerWG.Go(func() {
			for {
				k, ok := w.Get(t.Context())
				if !ok {
					return
				}
				if n := inflight[k].Add(1); n != 1 {
					t.Errorf("key %d held by %d workers", k, n)
				}
				seen[k].Store(added[k].Load())
				runtime.Gosched()
				inflight[k].Add(-1)
				runs.Add(1)
				w.Done(k)
			}
		})
	}
	var producerWG sync.WaitGroup
	for p := range producers {
		producerWG.Go(func() {
			for i := range addsEach {
				k := (i*7 + p) % keys
				added[k].Add(1)
				w.Add(k)
			}
		})
	}
	producerWG.Wait()
	if dropped, err := w.ShutDownWithDrain(t.Context()); err != nil || dropped != 0 {
		t.Fatalf("ShutDownWithDrain() = %d, %v; want 0, nil", dropped, err)
	}
	workerWG.Wait()
	for k := range keys {
		if got, want := seen[k].Load(), added[k].Load(); got != want {
			t.Errorf("key %d: last run saw add %d of %d", k, got, want)
		}
	}
	if n := runs.Load(); n > producers*addsEach {
		t.Errorf("%d runs for %d adds", n, producers*addsEach)
	}
	t.Logf("%d adds ran %d times", producers*addsEach, runs.Load())
}

func TestWorkAddAfterOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newTestWork[string](t)
		start := time.Now()
		w.AddAfter("c", 3*time.Second)
		w.AddAfter("a", time.Second)
		w.AddAfter("b", 2*time.Second)
		w.AddAfter("d", 2*time.Second) // Same deadline as "b": order of addition.
		w.Add("now")
		want := []struct {
			key string
			at  time.Duration
		}{{"now", 0}, {"a", time.Second}, {"b", 2 * time.Second}, {"d", 2 * time.Second}, {"c", 3 * time.Second}}
		for _, want := range want {
			mustGet(t, w, want.key)
			if got := time.Since(start); got != want.at {
				t.Errorf("got %q at %v, want at %v", want.key, got, want.at)
			}
			w.Done(want.key)
		}
		if dropped := w.ShutDown(); dropped != 0 {
			t.Errorf("ShutDown() dropped %d, want 0", dropped)
		}
	})
}

func TestWorkAddAfterDeadlineReplacement(t *testing.T) {
	tests := []struct {
		name   string
		delays []time.Duration
		want   time.Duration
	}{
		{"earlier deadline wins", []time.Duration{5 * time.Second, time.Second}, time.Second},
		{"later deadline is ignored", []time.Duration{time.Second, 5 * time.Second}, time.Second},
		{"equal deadlines coalesce", []time.Duration{2 * time.Second, 2 * time.Second}, 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newTestWork[string](t)
				start := time.Now()
				for _, d := range tt.delays {
					w.AddAfter("k", d)
				}
				mustGet(t, w, "k")
				if got := time.Since(start); got != tt.want {
					t.Errorf("ready after %v, want %v", got, tt.want)
				}
				w.Done("k")
				// Exactly one entry: nothing else waits or is queued.
				if dropped := w.ShutDown(); dropped != 0 {
					t.Errorf("ShutDown() dropped %d, want 0", dropped)
				}
				if got := w.Len(); got != 0 {
					t.Errorf("Len() = %d, want 0", got)
				}
			})
		})
	}
}

// TestWorkAddAfterDueWhileProcessing checks that a deadline passing while a worker has the
// key marks it dirty, so Done queues it exactly once.
func TestWorkAddAfterDueWhileProcessing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newTestWork[string](t)
		w.Add("k")
		mustGet(t, w, "k")
		w.AddAfter("k", time.Second)
		// Let the deadline pass with no call on w, so Done is the first to see it. In the
		// bubble this only advances the fake clock.
		<-time.After(2 * time.Second)
		w.Done("k")
		if got := w.Len(); got != 1 {
			t.Fatalf("Len() after Done = %d, want 1", got)
		}
		if diff := cmp.Diff([]string{"k"}, drainWork(t, w)); diff != "" {
			t.Errorf("keys handed out (-want +got):\n%s", diff)
		}
	})
}

func TestWorkGetBlocksUntilAdd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newTestWork[string](t)
		got := make(chan string, 1)
		go func() {
			k, _ := w.Get(t.Context())
			got <- k
		}()
		synctest.Wait()
		select {
		case k := <-got:
			t.Fatalf("Get returned %q from an empty queue", k)
		default:
		}
		w.Add("a")
		if k := <-got; k != "a" {
			t.Errorf("Get() = %q, want a", k)
		}
		w.Done("a")
		w.ShutDown()
	})
}

// TestWorkGetWakesForEarlierDeadline checks that a Get already asleep until one deadline,
// or with no deadline at all, wakes for a delayed key added later with an earlier deadline.
func TestWorkGetWakesForEarlierDeadline(t *testing.T) {
	tests := []struct {
		name  string
		setup func(w *Work[string])
	}{
		{"no deadline yet", func(*Work[string]) {}},
		{"later deadline", func(w *Work[string]) { w.AddAfter("late", 5*time.Second) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newTestWork[string](t)
				tt.setup(w)
				start := time.Now()
				got := make(chan string, 1)
				go func() {
					k, _ := w.Get(t.Context())
					got <- k
				}()
				synctest.Wait() // Get is asleep.
				w.AddAfter("early", time.Second)
				if k := <-got; k != "early" {
					t.Errorf("Get() = %q, want early", k)
				}
				if d := time.Since(start); d != time.Second {
					t.Errorf("Get returned after %v, want 1s", d)
				}
				w.Done("early")
				w.ShutDown()
			})
		})
	}
}

func TestWorkGetContext(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(w *Work[string])
		ctx     func(t *testing.T) (context.Context, context.CancelFunc)
		after   time.Duration // When Get should return.
		wantLen int           // Len after Get returned false.
	}{
		{
			name:  "cancel while waiting",
			setup: func(*Work[string]) {},
			ctx: func(t *testing.T) (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(t.Context())
				time.AfterFunc(3*time.Second, cancel)
				return ctx, cancel
			},
			after: 3 * time.Second,
		},
		{
			name:  "deadline before a delayed key is due",
			setup: func(w *Work[string]) { w.AddAfter("late", time.Minute) },
			ctx: func(t *testing.T) (context.Context, context.CancelFunc) {
				return context.WithTimeout(t.Context(), time.Second)
			},
			after: time.Second,
		},
		{
			name:  "done context leaves queued keys queued",
			setup: func(w *Work[string]) { w.Add("a") },
			ctx: func(t *testing.T) (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(t.Context())
				cancel()
				return ctx, cancel
			},
			wantLen: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newTestWork[string](t)
				tt.setup(w)
				ctx, cancel := tt.ctx(t)
				defer cancel()
				start := time.Now()
				if k, ok := w.Get(ctx); ok {
					t.Fatalf("Get() = %q, true; want false", k)
				}
				if got := time.Since(start); got != tt.after {
					t.Errorf("Get returned after %v, want %v", got, tt.after)
				}
				if got := w.Len(); got != tt.wantLen {
					t.Errorf("Len() = %d, want %d", got, tt.wantLen)
				}
				w.ShutDown()
			})
		})
	}
}

func TestWorkShutDownDrainsQueuedKeys(t *testing.T) {
	w := newTestWork[string](t)
	w.Add("a")
	w.Add("b")
	w.Add("c")
	w.AddAfter("d", time.Second)
	w.AddAfter("e", time.Hour)
	if dropped := w.ShutDown(); dropped != 2 {
		t.Errorf("ShutDown() dropped %d, want 2", dropped)
	}
	if !w.ShuttingDown() {
		t.Error("ShuttingDown() = false after ShutDown")
	}
	w.Add("f")
	w.AddAfter("g", time.Millisecond)
	w.AddRateLimited("h")
	if n := w.NumRequeues("h"); n != 0 {
		t.Errorf("NumRequeues(h) after shutdown = %d, want 0", n)
	}
	if dropped := w.ShutDown(); dropped != 0 {
		t.Errorf("second ShutDown() dropped %d, want 0", dropped)
	}
	var got []string
	for {
		k, ok := w.Get(t.Context())
		if !ok {
			break
		}
		got = append(got, k)
		w.Done(k)
	}
	if diff := cmp.Diff([]string{"a", "b", "c"}, got); diff != "" {
		t.Errorf("keys handed out after ShutDown (-want +got):\n%s", diff)
	}
}

// TestWorkShutDownKeepsDueKeys checks that a delayed key whose deadline has passed is handed
// out after ShutDown, not dropped, even if no call on the queue noticed the deadline.
func TestWorkShutDownKeepsDueKeys(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newTestWork[string](t)
		w.AddAfter("due", time.Second)
		w.AddAfter("later", time.Hour)
		<-time.After(2 * time.Second) // Advances the bubble's fake clock.
		if dropped := w.ShutDown(); dropped != 1 {
			t.Errorf("ShutDown() dropped %d, want 1", dropped)
		}
		if diff := cmp.Diff([]string{"due"}, drainWork(t, w)); diff != "" {
			t.Errorf("keys handed out after ShutDown (-want +got):\n%s", diff)
		}
	})
}

func TestWorkShutDownWithDrain(t *testing.T) {
	t.Run("waits for in-flight keys", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newTestWork[string](t)
			w.Add("a")
			w.Add("b")
			mustGet(t, w, "a")
			done := startDrain(t, w)
			mustGet(t, w, "b") // Queued keys are still handed out.
			w.Done("b")
			synctest.Wait()
			if len(done) != 0 {
				t.Fatal("ShutDownWithDrain returned while a was being processed")
			}
			w.Done("a")
			if err := <-done; err != nil {
				t.Errorf("ShutDownWithDrain() = %v, want nil", err)
			}
		})
	})
	t.Run("a dirty in-flight key runs once more", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newTestWork[string](t)
			w.Add("a")
			mustGet(t, w, "a")
			w.Add("a")
			done := startDrain(t, w)
			w.Done("a")
			mustGet(t, w, "a")
			synctest.Wait()
			if len(done) != 0 {
				t.Fatal("ShutDownWithDrain returned while a was being processed")
			}
			w.Done("a")
			if err := <-done; err != nil {
				t.Errorf("ShutDownWithDrain() = %v, want nil", err)
			}
			if k, ok := w.Get(t.Context()); ok {
				t.Errorf("Get() after drain = %q, true; want false", k)
			}
		})
	})
	t.Run("bounded by ctx", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newTestWork[string](t)
			w.Add("a")
			mustGet(t, w, "a")
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			defer cancel()
			start := time.Now()
			if _, err := w.ShutDownWithDrain(ctx); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("ShutDownWithDrain() = %v, want %v", err, context.DeadlineExceeded)
			}
			if got := time.Since(start); got != time.Second {
				t.Errorf("ShutDownWithDrain returned after %v, want 1s", got)
			}
			w.Done("a")
		})
	})
	t.Run("reports dropped delayed keys", func(t *testing.T) {
		w := newTestWork[string](t)
		w.AddAfter("a", time.Hour)
		w.AddRateLimited("b")
		if dropped, err := w.ShutDownWithDrain(t.Context()); dropped != 2 || err != nil {
			t.Errorf("ShutDownWithDrain() = %d, %v; want 2, nil", dropped, err)
		}
	})
}

// startDrain runs ShutDownWithDrain in a goroutine, waits until it has shut the queue down,
// and returns a channel that receives its error.
func startDrain(t *testing.T, w *Work[string]) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := w.ShutDownWithDrain(t.Context())
		done <- err
	}()
	synctest.Wait()
	if !w.ShuttingDown() {
		t.Fatal("ShutDownWithDrain did not shut the queue down")
	}
	return done
}

// TestWorkShutDownReleasesWaiters blocks several Gets on a queue with only a far-off delayed
// key, in real time, and checks that ShutDown releases them all and leaves no goroutine or
// timer behind.
func TestWorkShutDownReleasesWaiters(t *testing.T) {
	w := newTestWork[string](t)
	w.AddAfter("late", time.Hour)
	const waiters = 4
	results := make(chan bool, waiters)
	for range waiters {
		go func() {
			_, ok := w.Get(t.Context())
			results <- ok
		}()
	}
	if dropped := w.ShutDown(); dropped != 1 {
		t.Errorf("ShutDown() dropped %d, want 1", dropped)
	}
	for range waiters {
		if ok := <-results; ok {
			t.Error("Get() = true after ShutDown of an empty queue")
		}
	}
	goleak.VerifyNone(t)
}
