package benchfleet

import (
	"context"
	"fmt"
	"time"
)

// Side is an echo of the fleet that the caller brings, such as fleet processes run
// outside this process; Bench.Measure times it with the same rig and the same
// measurement as the framework and the floor of Run.
type Side interface {
	// Start brings the echo up. It returns once the echo reacts to deltas of every
	// thing of the fleet (the warm-up round then proves it); if it fails, it leaves
	// nothing running.
	Start(ctx context.Context) error
	// Stop ends the echo and waits, within a bound of its own, for it to be gone.
	Stop()
}

// CPUMeter is implemented by a Side that runs outside this process and can tell the
// CPU time it has used so far; Measure then reports Result.SideCPUPerUpdateUs.
type CPUMeter interface {
	// CPUTime returns the side's CPU time so far, user and system; negative if
	// unknown.
	CPUTime() time.Duration
}

// Bench is a seeded fleet with its app and watcher, on which sides are measured one
// after another against the same server. It is not safe for concurrent use.
type Bench struct {
	opts Options
	r    *rig
}

// NewBench connects the app and the watcher to opts.Endpoint and seeds every
// thing's shadow with desired = reported. Options.Workers and Options.CPUProfile are
// not used: the sides measured are the caller's. Close releases it.
func NewBench(ctx context.Context, opts Options) (*Bench, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	return newBench(ctx, opts)
}

func newBench(ctx context.Context, opts Options) (*Bench, error) {
	r, err := newRig(ctx, opts)
	if err != nil {
		return nil, err
	}
	opts.Logger.Info("seeding shadows", "things", opts.Things)
	if _, err := r.round(ctx, false, true); err != nil {
		r.close()
		return nil, fmt.Errorf("benchfleet: seed: %w", err)
	}
	return &Bench{opts: opts, r: r}, nil
}

// Options returns the options in use, defaults filled in.
func (b *Bench) Options() Options { return b.opts }

// Measure starts s, runs a warm-up round and the measured rounds, stops s, and
// returns what was measured. The heap figures of the Result are this process's,
// which for a side in other processes is the rig's alone.
func (b *Bench) Measure(ctx context.Context, name string, s Side) (Result, error) {
	return runSide(ctx, b.r, name, callerSide{s}, nil)
}

// Close disconnects the app and the watcher.
func (b *Bench) Close() { b.r.close() }

// cpuMeter is a side whose CPU time is not this process's.
type cpuMeter interface {
	cpuTime() time.Duration
}

// callerSide adapts a Side to the package's side.
type callerSide struct{ s Side }

func (c callerSide) start(ctx context.Context) error { return c.s.Start(ctx) }
func (c callerSide) stop()                           { c.s.Stop() }

func (c callerSide) cpuTime() time.Duration {
	if m, ok := c.s.(CPUMeter); ok {
		return m.CPUTime()
	}
	return -1
}
