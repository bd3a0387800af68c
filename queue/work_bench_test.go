package queue

import (
	"context"
	"fmt"
	"math"
	"sync/atomic"
	"testing"
)

// benchKey has the shape of the framework's keys (shadowstate.ID), which this package
// cannot import.
type benchKey struct{ Thing, Name string }

func benchKeys(n int) []benchKey {
	keys := make([]benchKey, n)
	for i := range keys {
		keys[i] = benchKey{Thing: fmt.Sprintf("thing-%05d", i)}
	}
	return keys
}

func newBenchWork(b *testing.B) *Work[benchKey] {
	b.Helper()
	limiter, err := NewRateLimiter[benchKey](RateLimitOptions{QPS: math.Inf(1)})
	if err != nil {
		b.Fatal(err)
	}
	w := NewWork(WorkOptions[benchKey]{RateLimiter: limiter})
	b.Cleanup(func() { w.ShutDown() })
	return w
}

// BenchmarkWorkAddGetDone is one key's trip through the queue on one goroutine.
func BenchmarkWorkAddGetDone(b *testing.B) {
	w := newBenchWork(b)
	keys := benchKeys(1024)
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		w.Add(keys[i%len(keys)])
		k, ok := w.Get(ctx)
		if !ok {
			b.Fatal("queue shut down")
		}
		w.Done(k)
		i++
	}
}

// BenchmarkWorkContended runs add, get and done from GOMAXPROCS×p goroutines at
// once on one queue (every goroutine adds a key, then takes whichever key is next),
// as event handlers and workers use it. Keys are distinct, so every add queues.
func BenchmarkWorkContended(b *testing.B) {
	for _, p := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("p%d", p), func(b *testing.B) {
			w := newBenchWork(b)
			keys := benchKeys(1 << 16)
			var next atomic.Uint64
			ctx := context.Background()
			b.SetParallelism(p)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					w.Add(keys[next.Add(1)%uint64(len(keys))])
					k, ok := w.Get(ctx)
					if !ok {
						panic("queue shut down")
					}
					w.Done(k)
				}
			})
		})
	}
}

// BenchmarkWorkAddCoalesced adds keys that are already queued, from GOMAXPROCS×4
// goroutines: the burst a thousand deltas for a hundred shadows make before a worker
// runs. Each add finds its key dirty and does nothing but take the lock.
func BenchmarkWorkAddCoalesced(b *testing.B) {
	w := newBenchWork(b)
	keys := benchKeys(100)
	for _, k := range keys {
		w.Add(k)
	}
	var next atomic.Uint64
	b.SetParallelism(4)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			w.Add(keys[next.Add(1)%uint64(len(keys))])
		}
	})
	if n := w.Len(); n != len(keys) {
		b.Fatalf("%d keys queued, want %d", n, len(keys))
	}
}

// BenchmarkWorkAddRateLimited is a failed key's retry: AddRateLimited (the limiter's
// When and a timer heap insert), then Forget. The delays never come due here.
func BenchmarkWorkAddRateLimited(b *testing.B) {
	w := newBenchWork(b)
	keys := benchKeys(1024)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		k := keys[i%len(keys)]
		w.AddRateLimited(k)
		w.Forget(k)
		i++
	}
}
