package benchfleet

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"time"
)

// Side is one way of echoing the fleet that the bench measures: the framework and
// the floor of Run, in this process, or the member processes of RunFleet. Every side
// is timed with the same rig and the same measurement, so that their results compare.
type Side interface {
	// Start brings the echo up. It returns once the echo reacts to deltas of every
	// thing of the fleet (the warm-up round then proves it); if it fails, it leaves
	// nothing running.
	Start(ctx context.Context) error
	// Stop ends the echo and waits, within a bound of its own, for it to be gone.
	Stop()
}

// CPUMeter tells how much CPU time, user and system, something has used so far:
// the bench process, or a Side that runs in other processes (which then also gets
// Result.SideCPUPerUpdateUs). CPUTime is negative when it is unknown.
type CPUMeter interface {
	CPUTime() time.Duration
}

// MessageCounter tells how many MQTT messages a Side's connection has received and
// published so far, so that the bench can report the messages each update costs.
type MessageCounter interface {
	Messages() (received, published uint64)
}

// ThrottleCounter tells how many publishes a Side's publish caps have delayed so
// far (transport.Conn.Throttled, summed over its connections).
type ThrottleCounter interface {
	Throttled() int64
}

// bench is a seeded fleet with its app and watcher, on which sides are measured one
// after another against the same server. It is not safe for concurrent use.
type bench struct {
	opts Options
	r    *rig
	self CPUMeter // the bench process
}

// newBench connects the app and the watcher to opts.Endpoint, which has its
// defaults, and seeds every thing's shadow with desired = reported. close releases
// it.
func newBench(ctx context.Context, opts Options) (*bench, error) {
	r, err := newRig(ctx, opts)
	if err != nil {
		return nil, err
	}
	opts.Logger.Info("seeding shadows", "things", opts.Things)
	if _, err := r.round(ctx, false, true); err != nil {
		r.close()
		return nil, fmt.Errorf("benchfleet: seed: %w", err)
	}
	return &bench{opts: opts, r: r, self: processes{os.Getpid()}}, nil
}

// close disconnects the app and the watcher.
func (b *bench) close() { b.r.close() }

// measure measures one side: heap before, start, warm-up round, heap loaded, the
// measured rounds (under the CPU profile, if any), stop. The heap figures and
// CPUPerUpdateUs are this process's; a side that is a CPUMeter also gets
// SideCPUPerUpdateUs.
func (b *bench) measure(ctx context.Context, name string, s Side, profile io.Writer) (Result, error) {
	r := b.r
	log := b.opts.Logger.With("side", name)
	var res Result
	base := liveHeap()
	peak := sampleHeap()
	defer peak.stop()

	began := time.Now()
	if err := s.Start(ctx); err != nil {
		return res, fmt.Errorf("benchfleet: start %s: %w", name, err)
	}
	defer s.Stop()
	if _, err := r.round(ctx, false, false); err != nil {
		return res, fmt.Errorf("benchfleet: %s warm-up round: %w", name, err)
	}
	res.StartSeconds = time.Since(began).Seconds()
	loaded := liveHeap()
	res.HeapPerShadowBytes = (float64(loaded) - float64(base)) / float64(b.opts.Things)
	log.Info("fleet loaded", "seconds", res.StartSeconds, "heap_per_shadow", int(res.HeapPerShadowBytes))

	if profile != nil {
		if err := pprof.StartCPUProfile(profile); err != nil {
			return res, fmt.Errorf("benchfleet: cpu profile: %w", err)
		}
	}
	meter, _ := s.(CPUMeter)
	var sideCPU0 time.Duration = -1
	if meter != nil {
		sideCPU0 = meter.CPUTime()
	}
	counter, _ := s.(MessageCounter)
	var in0, out0 uint64
	if counter != nil {
		in0, out0 = counter.Messages()
	}
	throttler, _ := s.(ThrottleCounter)
	var throttled0 int64
	if throttler != nil {
		throttled0 = throttler.Throttled()
	}
	var server CPUMeter = processes(b.opts.ServerPIDs)
	server0 := time.Duration(-1)
	if len(b.opts.ServerPIDs) > 0 {
		server0 = server.CPUTime()
	}
	allocs0 := mallocs()
	cpu0 := b.self.CPUTime()
	var total time.Duration
	for i := range b.opts.Rounds {
		d, err := r.round(ctx, true, false)
		if err != nil {
			if profile != nil {
				pprof.StopCPUProfile()
			}
			return res, fmt.Errorf("benchfleet: %s round %d: %w", name, i+1, err)
		}
		total += d
		log.Info("round", "n", i+1, "seconds", d.Seconds())
	}
	cpu := b.self.CPUTime() - cpu0
	allocs := mallocs() - allocs0
	serverCPU := time.Duration(-1)
	if server0 >= 0 {
		if now := server.CPUTime(); now >= 0 {
			serverCPU = now - server0
		}
	}
	if throttler != nil {
		res.Throttled = throttler.Throttled() - throttled0
	}
	var in, out uint64
	if counter != nil {
		in1, out1 := counter.Messages()
		in, out = in1-in0, out1-out0
	}
	var sideCPU time.Duration = -1
	if sideCPU0 >= 0 {
		if now := meter.CPUTime(); now >= 0 {
			sideCPU = now - sideCPU0
		}
	}
	if profile != nil {
		pprof.StopCPUProfile()
	}
	res.PeakHeapBytes = peak.stop()

	lat := r.latencies()
	res.Updates = len(lat)
	res.Seconds = total.Seconds()
	res.UpdatesPerSec = Ratio(float64(res.Updates), res.Seconds)
	res.P50Ms = ms(percentile(lat, 0.50))
	res.P99Ms = ms(percentile(lat, 0.99))
	res.MaxMs = ms(percentile(lat, 1))
	if cpu0 >= 0 && res.Updates > 0 {
		res.CPUPerUpdateUs = float64(cpu.Microseconds()) / float64(res.Updates)
	}
	if counter != nil && res.Updates > 0 {
		res.ReceivedPerUpdate = float64(in) / float64(res.Updates)
		res.PublishedPerUpdate = float64(out) / float64(res.Updates)
	}
	if res.Updates > 0 {
		res.AllocsPerUpdate = float64(allocs) / float64(res.Updates)
	}
	if serverCPU >= 0 && res.Updates > 0 {
		res.ServerCPUPerUpdateUs = float64(serverCPU.Microseconds()) / float64(res.Updates)
	}
	if sideCPU >= 0 && res.Updates > 0 {
		res.SideCPUPerUpdateUs = float64(sideCPU.Microseconds()) / float64(res.Updates)
	}
	return res, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
