package benchfleet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"runtime"
	"time"

	"github.com/shadowsync/shadowsync/internal/awsiot"
	"github.com/shadowsync/shadowsync/reconciler"
)

// Defaults of Options, exported so that a command line can show them.
const (
	// DefaultThings is the size of the fleet when Options.Things is zero.
	DefaultThings = 1000
	// DefaultRounds is how many rounds are measured when Options.Rounds is zero.
	DefaultRounds = 10
	// DefaultWindow caps the changes not yet reported when Options.Window is zero.
	DefaultWindow = 1000
	// DefaultRoundTimeout bounds a round when Options.RoundTimeout is zero.
	DefaultRoundTimeout = 2 * time.Minute
)

// Options configure Run, and RunFleet through FleetOptions. Only Endpoint is
// required.
type Options struct {
	// Endpoint is the plain MQTT URL (mqtt://host:port) of a broker with the Device
	// Shadow service, such as localiot or `shadowsync serve`. Clients connect with
	// no credentials, so it needs operator rights for plain clients.
	Endpoint string
	// Things is the size of the fleet. Zero means 1000.
	Things int
	// Rounds is how many measured rounds run; in each, every thing's desired state
	// changes once. A warm-up round, not measured, runs before them. Zero means 10.
	Rounds int
	// Workers is the framework's MaxConcurrentReconciles, with the echo reconciler
	// registered by hand. Zero means reconciler.Echo exactly as it ships
	// (reconciler.EchoWorkers workers).
	Workers int
	// QoS0 runs the framework side with shadowclient.Options.QoS0: its shadow
	// topics subscribed at QoS 0. The floor side is unchanged.
	QoS0 bool
	// Window caps how many things may have a desired change not yet reported at
	// once, so that a round of a large fleet does not overrun the broker's buffers for
	// one client (the embedded broker drops a client's messages beyond 8192 pending).
	// Zero means 1000.
	Window int
	// RoundTimeout bounds each round, and the framework's start. Zero means 2 min.
	RoundTimeout time.Duration
	// CPUProfile, when set, receives a CPU profile of the framework side's measured
	// rounds. It covers the whole process; goroutines carry the label role=framework,
	// role=rig (the app and the watcher) or role=floor, so that `go tool pprof
	// -tagfocus role=framework` shows the framework's share alone.
	CPUProfile io.Writer
	// Logger receives progress logs. Nil discards them.
	Logger *slog.Logger
	// Pool is the framework's connection pool (reconciler.Options.Pool.Size). Zero
	// means one connection.
	Pool int
	// PoolUnshared sets reconciler.Options.Pool.Unshared: every pooled connection
	// receives every thing's messages on its wildcard filters, as before the pool
	// shared them.
	PoolUnshared bool
	// AWSLimits runs under AWS IoT's 100 publishes per second per connection: the
	// framework's connections are capped at it (transport's MaxPublishRate), and the
	// app spreads its changes over enough connections, each paced under it. The
	// server is expected to enforce it (localiot's Limits.MaxPublishRate). Only
	// RunPool measures this way: a one-connection floor cannot carry such a fleet.
	AWSLimits bool
	// MaxPublishRate, under AWSLimits, caps each of the framework's connections
	// (transport's MaxPublishRate). Zero means AWS IoT's 100 per second, the
	// transport's default on AWS IoT endpoints.
	MaxPublishRate float64
	// DocumentsFloor also measures a third side after the floor: a bare paho client
	// on the framework's protocol (documents messages in, a version-fenced report
	// out; see documentsFloorSide), reported as Report.DocumentsFloor with its own
	// ratios.
	DocumentsFloor bool
	// ServerPIDs are the processes of a server run outside the bench (Endpoint), such
	// as `shadowsync serve` or mosquitto plus an attached shadow service. Their CPU
	// time during each side's measured rounds is reported as
	// Result.ServerCPUPerUpdateUs, so that what a side costs the server shows too.
	// Linux only; empty measures nothing.
	ServerPIDs []int
}

func (o Options) withDefaults() (Options, error) {
	u, err := url.Parse(o.Endpoint)
	if err != nil || (u.Scheme != "mqtt" && u.Scheme != "tcp") || u.Host == "" {
		return o, fmt.Errorf("benchfleet: endpoint %q: want mqtt://host:port", o.Endpoint)
	}
	if o.Things < 0 || o.Rounds < 0 || o.Workers < 0 || o.Window < 0 || o.RoundTimeout < 0 || o.Pool < 0 || o.MaxPublishRate < 0 {
		return o, errors.New("benchfleet: Things, Rounds, Workers, Window, RoundTimeout and Pool must not be negative")
	}
	if o.Things > 99999 {
		return o, errors.New("benchfleet: at most 99999 things")
	}
	if o.Things == 0 {
		o.Things = DefaultThings
	}
	if o.Rounds == 0 {
		o.Rounds = DefaultRounds
	}
	if o.Window == 0 {
		o.Window = DefaultWindow
	}
	if o.RoundTimeout == 0 {
		o.RoundTimeout = DefaultRoundTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

// Result is what one side measured over the measured rounds.
type Result struct {
	// Updates is how many desired changes were echoed and timed: Things × Rounds.
	Updates int `json:"updates"`
	// Seconds is the time the measured rounds took, each from its first desired
	// update to its last matching report.
	Seconds float64 `json:"seconds"`
	// UpdatesPerSec is Updates / Seconds.
	UpdatesPerSec float64 `json:"updates_per_sec"`
	// P50Ms, P99Ms and MaxMs summarise the latency of each update: from the
	// acceptance of the desired change to the acceptance of the matching report, as
	// one watcher sees both.
	P50Ms float64 `json:"p50_ms"`
	P99Ms float64 `json:"p99_ms"`
	MaxMs float64 `json:"max_ms"`
	// CPUPerUpdateUs is the process's CPU time (user and system) during the measured
	// rounds divided by Updates: the side's cost plus the app's, the watcher's and,
	// when in process, the server's — the same on both sides.
	CPUPerUpdateUs float64 `json:"cpu_us_per_update"`
	// PeakHeapBytes is the highest heap in use (live and not yet collected) the
	// process reached from the side's start to the end of its rounds.
	PeakHeapBytes uint64 `json:"peak_heap_bytes"`
	// HeapPerShadowBytes is the live heap after GC with the fleet loaded (started and
	// warmed up) minus the live heap before the side started, divided by Things. It
	// includes the side's fixed cost, spread over the fleet.
	HeapPerShadowBytes float64 `json:"heap_per_shadow_bytes"`
	// StartSeconds is how long the side took from its start until the warm-up round
	// had converged.
	StartSeconds float64 `json:"start_seconds"`
	// SideCPUPerUpdateUs is, for a side run outside this process (a Side that is a
	// CPUMeter), the CPU time it used during the measured rounds divided by Updates.
	// CPUPerUpdateUs then counts this process alone: the app, the watcher and, when in
	// process, the server. Zero when unknown.
	SideCPUPerUpdateUs float64 `json:"side_cpu_us_per_update,omitempty"`
	// ServerCPUPerUpdateUs is the CPU time the server's processes (Options.ServerPIDs)
	// used during the measured rounds divided by Updates. Zero when not measured.
	ServerCPUPerUpdateUs float64 `json:"server_cpu_us_per_update,omitempty"`
	// AllocsPerUpdate is the heap allocations this process made during the measured
	// rounds divided by Updates: like CPUPerUpdateUs, the side's plus the app's, the
	// watcher's and, when in process, the server's.
	AllocsPerUpdate float64 `json:"allocs_per_update"`
	// ReceivedPerUpdate and PublishedPerUpdate are, for a side whose connection
	// counts its messages (a MessageCounter: the framework), the MQTT messages it
	// received and published during the measured rounds divided by Updates. Zero when
	// unknown. The floor receives one (the delta) and publishes one (the report).
	ReceivedPerUpdate  float64 `json:"received_per_update,omitempty"`
	PublishedPerUpdate float64 `json:"published_per_update,omitempty"`
	// Throttled is, for a side that counts them (a ThrottleCounter: the framework),
	// how many of its publishes its connections' publish caps delayed during the
	// measured rounds.
	Throttled int64 `json:"throttled,omitempty"`
}

// Ratios compare the framework with the floor: framework / floor.
type Ratios struct {
	Throughput   float64 `json:"throughput"`
	P50          float64 `json:"p50"`
	P99          float64 `json:"p99"`
	CPUPerUpdate float64 `json:"cpu_per_update"`
	PeakHeap     float64 `json:"peak_heap"`
}

// Report is the outcome of Run.
type Report struct {
	Things  int `json:"things"`
	Rounds  int `json:"rounds"`
	Workers int `json:"workers"`
	// EchoAsShipped says the framework was reconciler.Echo as it ships (Options.Workers
	// zero); Workers is then its reconciler.EchoWorkers.
	EchoAsShipped bool   `json:"echo_as_shipped,omitempty"`
	QoS0          bool   `json:"qos0,omitempty"`
	Window        int    `json:"window"`
	GOMAXPROCS    int    `json:"gomaxprocs"`
	Endpoint      string `json:"endpoint"`
	Framework     Result `json:"framework"`
	Floor         Result `json:"floor"`
	Ratios        Ratios `json:"ratios"`
	// DocumentsFloor and DocumentsRatios (framework / documents floor) are there
	// with Options.DocumentsFloor.
	DocumentsFloor  *Result `json:"floor_documents,omitempty"`
	DocumentsRatios *Ratios `json:"ratios_documents,omitempty"`
}

// Run seeds the fleet's shadows, then runs the workload on the framework side and
// then on the floor side, and reports both. It returns an error if a round does not
// converge within Options.RoundTimeout.
func Run(ctx context.Context, opts Options) (*Report, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	b, err := newBench(ctx, opts)
	if err != nil {
		return nil, err
	}
	defer b.close()
	r := b.r

	rep := &Report{
		Things: opts.Things, Rounds: opts.Rounds, Workers: opts.workers(), EchoAsShipped: opts.Workers == 0, QoS0: opts.QoS0, Window: opts.Window,
		GOMAXPROCS: runtime.GOMAXPROCS(0), Endpoint: opts.Endpoint,
	}
	fw := &frameworkSide{opts: opts, names: r.names, clientID: "bench-framework-" + r.runID}
	if rep.Framework, err = b.measure(ctx, "framework", fw, opts.CPUProfile); err != nil {
		return nil, err
	}
	floor := &floorSide{opts: opts, clientID: "bench-floor-" + r.runID}
	if rep.Floor, err = b.measure(ctx, "floor", floor, nil); err != nil {
		return nil, err
	}
	rep.Ratios = ratios(rep.Framework, rep.Floor)
	if opts.DocumentsFloor {
		docs := &documentsFloorSide{opts: opts, clientID: "bench-floor-documents-" + r.runID, token: "bench-" + r.runID + "-"}
		res, err := b.measure(ctx, "floor-documents", docs, nil)
		if err != nil {
			return nil, err
		}
		ra := ratios(rep.Framework, res)
		rep.DocumentsFloor, rep.DocumentsRatios = &res, &ra
	}
	return rep, nil
}

// ratios compares a side with a floor: side / floor.
func ratios(side, floor Result) Ratios {
	return Ratios{
		Throughput:   Ratio(side.UpdatesPerSec, floor.UpdatesPerSec),
		P50:          Ratio(side.P50Ms, floor.P50Ms),
		P99:          Ratio(side.P99Ms, floor.P99Ms),
		CPUPerUpdate: Ratio(side.CPUPerUpdateUs, floor.CPUPerUpdateUs),
		PeakHeap:     Ratio(float64(side.PeakHeapBytes), float64(floor.PeakHeapBytes)),
	}
}

// Ratio returns a / b, or 0 when b is 0 (nothing to compare with): every ratio of
// the bench's reports and tables is computed this way.
func Ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// PoolReport is the outcome of RunPool.
type PoolReport struct {
	Things     int    `json:"things"`
	Rounds     int    `json:"rounds"`
	Workers    int    `json:"workers"`
	Pool       int    `json:"pool"`
	Unshared   bool   `json:"unshared,omitempty"`
	AWSLimits  bool   `json:"aws_limits"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	Endpoint   string `json:"endpoint"`
	// MaxPublishRate is each framework connection's publish cap (0: none).
	MaxPublishRate float64 `json:"max_publish_rate,omitempty"`
	// QuotaLimitedPerSec is what the pool's connections may publish in all, Pool ×
	// AWS IoT's 100 per second: the highest report rate the quota allows (0 without
	// AWSLimits).
	QuotaLimitedPerSec float64 `json:"quota_limited_per_sec,omitempty"`
	// ServerDropped is how many publishes the server refused or dropped (throttled,
	// or against its rules) during the whole run, when the caller can tell (a server
	// in process); -1 when it cannot.
	ServerDropped int64  `json:"server_dropped"`
	Framework     Result `json:"framework"`
}

// RunPool seeds the fleet's shadows and runs the workload on the framework side
// alone, on a pool of Options.Pool connections, typically with Options.AWSLimits:
// how close a pool comes to the rate AWS IoT's per-connection quota allows it.
func RunPool(ctx context.Context, opts Options) (*PoolReport, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	b, err := newBench(ctx, opts)
	if err != nil {
		return nil, err
	}
	defer b.close()
	rep := &PoolReport{
		Things: opts.Things, Rounds: opts.Rounds, Workers: opts.workers(), Pool: max(opts.Pool, 1), Unshared: opts.PoolUnshared, AWSLimits: opts.AWSLimits,
		GOMAXPROCS: runtime.GOMAXPROCS(0), Endpoint: opts.Endpoint, ServerDropped: -1,
	}
	if opts.AWSLimits {
		rep.QuotaLimitedPerSec = float64(rep.Pool) * awsiot.MaxPublishesPerSecond
		rep.MaxPublishRate = opts.frameworkCap()
	}
	fw := &frameworkSide{opts: opts, names: b.r.names, clientID: "bench-framework-" + b.r.runID}
	if rep.Framework, err = b.measure(ctx, "framework", fw, opts.CPUProfile); err != nil {
		return nil, err
	}
	return rep, nil
}

// workers is the framework's MaxConcurrentReconciles.
func (o Options) workers() int {
	if o.Workers == 0 {
		return reconciler.EchoWorkers
	}
	return o.Workers
}

// frameworkCap is the framework connections' publish cap under AWSLimits.
func (o Options) frameworkCap() float64 {
	if o.MaxPublishRate > 0 {
		return o.MaxPublishRate
	}
	return awsiot.MaxPublishesPerSecond
}
