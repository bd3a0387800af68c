package benchfleet

import (
	"math"
	"runtime"
	"runtime/metrics"
	"slices"
	"time"
)

// liveHeap runs a full GC and returns the heap still in use: the live heap.
func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// mallocs returns the heap allocations this process has made so far.
func mallocs() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:objects"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// heapObjects is the runtime metric for heap memory in use by objects, live or not
// yet swept: what the GC has to deal with.
const heapObjects = "/memory/classes/heap/objects:bytes"

// heapSampler records the highest heapObjects seen, sampling every few milliseconds.
type heapSampler struct {
	quit chan struct{}
	done chan uint64
}

func sampleHeap() *heapSampler {
	h := &heapSampler{quit: make(chan struct{}), done: make(chan uint64, 1)}
	go func() {
		s := []metrics.Sample{{Name: heapObjects}}
		var peak uint64
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(s)
			if s[0].Value.Kind() == metrics.KindUint64 {
				peak = max(peak, s[0].Value.Uint64())
			}
			select {
			case <-h.quit:
				h.done <- peak
				return
			case <-t.C:
			}
		}
	}()
	return h
}

// stop ends the sampling and returns the peak. It may be called more than once.
func (h *heapSampler) stop() uint64 {
	select {
	case <-h.quit:
	default:
		close(h.quit)
	}
	peak := <-h.done
	h.done <- peak
	return peak
}

// percentile returns the q-quantile of d (nearest rank), sorting d in place.
func percentile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	i := int(math.Ceil(q*float64(len(d)))) - 1
	return d[min(max(i, 0), len(d)-1)]
}
