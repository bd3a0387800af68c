package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/shadowsync/shadowsync/internal/awsiot"
	"github.com/shadowsync/shadowsync/internal/benchfleet"
	"github.com/shadowsync/shadowsync/localiot"
)

// runBench parses bench's flags and runs benchfleet's echo-fleet benchmark: the
// framework, then a bare paho client (the floor), on the same server, and prints
// both with their ratios. With --fleet-processes it measures the fleet echo in 1,
// 2… processes instead (bench_fleet.go).
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == fleetMemberCommand {
		return runBenchFleetMember(ctx, args[1:], stdout, stderr)
	}
	fs := newFlagSet("bench", stdout)
	var (
		things       = fs.Int("things", benchfleet.DefaultThings, "fleet size: `N` things, all on one connection")
		rounds       = fs.Int("rounds", benchfleet.DefaultRounds, "`R` measured rounds; in each, every thing's desired state changes once")
		endpoint     = fs.String("endpoint", "", "plain MQTT `URL` of a running shadow service, mqtt://HOST:PORT (e.g. shadowsync serve --mqtt); default: localiot in this process")
		workers      = fs.Int("workers", 0, "the framework's reconcile `workers` (MaxConcurrentReconciles) on the echo reconciler registered by hand; 0 is reconciler.Echo as it ships (reconciler.EchoWorkers)")
		window       = fs.Int("window", benchfleet.DefaultWindow, "at most `N` desired changes not yet reported at once")
		qos0         = fs.Bool("qos0", false, "run the framework with its shadow topics subscribed at QoS 0 (shadowclient.Options.QoS0)")
		roundTimeout = fs.Duration("round-timeout", benchfleet.DefaultRoundTimeout, "bound on each round")
		jsonOnly     = fs.Bool("json", false, "print only the JSON line, for scripts")
		cpuProfile   = fs.String("cpuprofile", "", "write a CPU profile of the framework side's measured rounds to `FILE`")
		logLevel     = fs.String("log-level", "info", "progress log `LEVEL` on stderr: debug, info, warn or error")
		pool         = fs.Int("pool", 0, "run the framework alone on a pool of `N` connections (reconciler.Options.Pool), without the floor; see --aws-limits")
		poolUnshared = fs.Bool("pool-unshared", false, "with --pool, every pooled connection receives every thing's messages on its wildcard subscriptions (reconciler.Pool.Unshared), as on a broker that cannot share $aws topics")
		awsLimits    = fs.Bool("aws-limits", false, "AWS IoT's 100 publishes per second per connection: the in-process localiot enforces it, the framework's connections are capped at it, and the app spreads its changes over enough connections; runs the framework alone, as --pool does, and reports its rate against the quota's")
		maxRate      = fs.Float64("max-publish-rate", 0, "with --aws-limits, cap each framework connection at `R` publishes per second (transport's MaxPublishRate); default AWS IoT's 100")
		docsFloor    = fs.Bool("documents-floor", false, "also measure a bare paho client on the framework's protocol (documents messages in, a version-fenced report out, its own documents message recognised by clientToken) and compare the framework with it too")
		serverPIDs   = fs.String("server-pid", "", "with --endpoint, the comma-separated process IDs of the server (e.g. mosquitto's and the attached service's): their CPU per update is reported for each side (Linux)")
		fleetProcs   = fs.String("fleet-processes", "", "fleet mode: instead of framework and floor, measure the fleet echo run by N processes of one shared-subscription group, for each N of the comma-separated `LIST` (e.g. 1,2,3); --workers is then each process's (default 16) and --cpuprofile FILE gives each process's profile in FILE.n<N>.p<i>")
	)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case *things < 1 || *things > 99999:
		return fmt.Errorf("%w: --things must be 1 to 99999", errUsage)
	case *rounds < 1:
		return fmt.Errorf("%w: --rounds must be at least 1", errUsage)
	case *workers < 0:
		return fmt.Errorf("%w: --workers must not be negative", errUsage)
	case *window < 1:
		return fmt.Errorf("%w: --window must be at least 1", errUsage)
	case *roundTimeout <= 0:
		return fmt.Errorf("%w: --round-timeout must be positive", errUsage)
	case *maxRate < 0 || *maxRate > 0 && !*awsLimits:
		return fmt.Errorf("%w: --max-publish-rate is positive, and only with --aws-limits", errUsage)
	case *pool < 0 || *pool > 1000:
		return fmt.Errorf("%w: --pool must be 0 to 1000", errUsage)
	case *poolUnshared && *pool < 2:
		return fmt.Errorf("%w: --pool-unshared needs --pool of 2 or more", errUsage)
	case (*pool > 0 || *awsLimits) && *fleetProcs != "":
		return fmt.Errorf("%w: --pool and --aws-limits measure one process; --fleet-processes several", errUsage)
	}
	pids, err := parsePIDs(*serverPIDs)
	switch {
	case err != nil:
		return fmt.Errorf("%w: --server-pid %v", errUsage, err)
	case len(pids) > 0 && *endpoint == "":
		return fmt.Errorf("%w: --server-pid needs --endpoint (without it the server runs in this process)", errUsage)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("%w: --log-level %q: want debug, info, warn or error", errUsage, *logLevel)
	}
	var fleet *benchfleet.FleetOptions
	if *fleetProcs != "" {
		procs, err := parseProcessCounts(*fleetProcs)
		if err != nil {
			return fmt.Errorf("%w: --fleet-processes %v", errUsage, err)
		}
		fleet = &benchfleet.FleetOptions{
			Processes: procs, ServerInProcess: *endpoint == "",
			MemberCPUProfile: *cpuProfile, MemberLogLevel: *logLevel, MemberStderr: stderr,
		}
		*workers = fleetWorkers(fs, *workers)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	opts := benchfleet.Options{
		Endpoint: *endpoint, Things: *things, Rounds: *rounds, Workers: *workers, QoS0: *qos0,
		Window: *window, RoundTimeout: *roundTimeout, Logger: log, Pool: *pool, PoolUnshared: *poolUnshared, AWSLimits: *awsLimits, MaxPublishRate: *maxRate,
		ServerPIDs: pids, DocumentsFloor: *docsFloor,
	}
	var dropped *dropCounter
	if opts.Endpoint == "" {
		var limits localiot.Limits
		if *awsLimits {
			limits.MaxPublishRate = awsiot.MaxPublishesPerSecond
		}
		var stop func()
		var ep string
		var err error
		stop, ep, dropped, err = startLocalIoT(ctx, log, limits)
		if err != nil {
			return err
		}
		defer stop()
		opts.Endpoint = ep
	}
	if fleet != nil {
		fleet.Options = opts
		return runBenchFleet(ctx, *fleet, *jsonOnly, stdout)
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		opts.CPUProfile = f
	}

	if *pool > 0 || *awsLimits {
		return runBenchPool(ctx, opts, *endpoint == "", dropped, *jsonOnly, stdout)
	}
	rep, err := benchfleet.Run(ctx, opts)
	if err != nil {
		return err
	}
	if *endpoint == "" {
		rep.Endpoint = "localiot in process (" + rep.Endpoint + ")"
	}
	if !*jsonOnly {
		printBenchTable(stdout, rep)
	}
	line, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s\n", line)
	return err
}

// startLocalIoT runs localiot in this process with limits, logging only its
// warnings, and returns its plain endpoint, the count of what it dropped, and a
// function that stops it.
func startLocalIoT(ctx context.Context, log *slog.Logger, limits localiot.Limits) (stop func(), endpoint string, dropped *dropCounter, err error) {
	srvLog := slog.New(log.Handler().WithAttrs([]slog.Attr{slog.String("component", "localiot")}))
	if log.Enabled(ctx, slog.LevelInfo) && !log.Enabled(ctx, slog.LevelDebug) {
		srvLog = slog.New(slog.NewTextHandler(io.Discard, nil)) // the server's info lines are noise here
	}
	dropped = &dropCounter{next: srvLog.Handler(), n: new(atomic.Int64)}
	srv, err := localiot.New(localiot.Options{Logger: slog.New(dropped), Limits: limits})
	if err != nil {
		return nil, "", nil, err
	}
	srvCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	// The server's goroutines carry the profile label role=server.
	go pprof.Do(srvCtx, pprof.Labels("role", "server"), func(ctx context.Context) { done <- srv.Start(ctx) })
	select {
	case <-srv.Ready():
	case err := <-done:
		cancel()
		return nil, "", nil, err
	case <-time.After(30 * time.Second):
		cancel()
		<-done
		return nil, "", nil, fmt.Errorf("localiot not ready in 30s")
	}
	return func() { cancel(); <-done }, srv.Endpoints().Plain, dropped, nil
}

// printBenchTable prints the report as a table, with issue 9's targets.
func printBenchTable(w io.Writer, r *benchfleet.Report) {
	qos := ""
	if r.QoS0 {
		qos = ", framework at QoS 0"
	}
	echo := ""
	if r.EchoAsShipped {
		echo = " (reconciler.Echo as it ships)"
	}
	fmt.Fprintf(w, "shadowsync bench: %d things on one connection, %d rounds, %d worker(s)%s%s, window %d, GOMAXPROCS %d\nserver: %s\n\n",
		r.Things, r.Rounds, r.Workers, echo, qos, r.Window, r.GOMAXPROCS, r.Endpoint)
	fw, fl, ra := r.Framework, r.Floor, r.Ratios
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\tframework\tfloor\tframework/floor\ttarget\t")
	row := func(name, a, b string, ratio float64, target string) {
		rs := "-"
		if ratio > 0 {
			rs = fmt.Sprintf("%.2f", ratio)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t\n", name, a, b, rs, target)
	}
	row("updates/s", fmt.Sprintf("%.0f", fw.UpdatesPerSec), fmt.Sprintf("%.0f", fl.UpdatesPerSec), ra.Throughput, verdict(ra.Throughput >= 0.8, "≥ 0.8"))
	row("p50 latency", msString(fw.P50Ms), msString(fl.P50Ms), ra.P50, "")
	row("p99 latency", msString(fw.P99Ms), msString(fl.P99Ms), ra.P99, verdict(ra.P99 <= 1.5, "≤ 1.5"))
	row("max latency", msString(fw.MaxMs), msString(fl.MaxMs), benchfleet.Ratio(fw.MaxMs, fl.MaxMs), "")
	row("CPU per update", fmt.Sprintf("%.1f µs", fw.CPUPerUpdateUs), fmt.Sprintf("%.1f µs", fl.CPUPerUpdateUs), ra.CPUPerUpdate, "")
	if fw.ServerCPUPerUpdateUs > 0 || fl.ServerCPUPerUpdateUs > 0 {
		row("server CPU per update", fmt.Sprintf("%.1f µs", fw.ServerCPUPerUpdateUs), fmt.Sprintf("%.1f µs", fl.ServerCPUPerUpdateUs), benchfleet.Ratio(fw.ServerCPUPerUpdateUs, fl.ServerCPUPerUpdateUs), "")
	}
	row("allocs per update", fmt.Sprintf("%.0f", fw.AllocsPerUpdate), fmt.Sprintf("%.0f", fl.AllocsPerUpdate), benchfleet.Ratio(fw.AllocsPerUpdate, fl.AllocsPerUpdate), "")
	row("messages in / update", fmt.Sprintf("%.2f", fw.ReceivedPerUpdate), fmt.Sprintf("%.2f", fl.ReceivedPerUpdate), benchfleet.Ratio(fw.ReceivedPerUpdate, fl.ReceivedPerUpdate), "")
	row("messages out / update", fmt.Sprintf("%.2f", fw.PublishedPerUpdate), fmt.Sprintf("%.2f", fl.PublishedPerUpdate), benchfleet.Ratio(fw.PublishedPerUpdate, fl.PublishedPerUpdate), "")
	row("peak heap", mib(fw.PeakHeapBytes), mib(fl.PeakHeapBytes), ra.PeakHeap, "")
	row("heap per shadow", fmt.Sprintf("%.0f B", fw.HeapPerShadowBytes), fmt.Sprintf("%.0f B", fl.HeapPerShadowBytes), 0, verdict(fw.HeapPerShadowBytes <= 4096, "≤ 4 KB"))
	row("start to warm", fmt.Sprintf("%.2f s", fw.StartSeconds), fmt.Sprintf("%.2f s", fl.StartSeconds), benchfleet.Ratio(fw.StartSeconds, fl.StartSeconds), "")
	tw.Flush()
	fmt.Fprintln(w, "\nThroughput and p99 targets are for 1000 things, heap per shadow for 10,000.")
	if d := r.DocumentsFloor; d != nil {
		ra := r.DocumentsRatios
		fmt.Fprintln(w, "\nAgainst a bare paho client on the framework's protocol (documents in, fenced report out):")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "\tframework\tdocuments floor\tframework/floor\t")
		row := func(name, a, b string, ratio float64) {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%.2f\t\n", name, a, b, ratio)
		}
		row("updates/s", fmt.Sprintf("%.0f", fw.UpdatesPerSec), fmt.Sprintf("%.0f", d.UpdatesPerSec), ra.Throughput)
		row("p99 latency", msString(fw.P99Ms), msString(d.P99Ms), ra.P99)
		row("CPU per update", fmt.Sprintf("%.1f µs", fw.CPUPerUpdateUs), fmt.Sprintf("%.1f µs", d.CPUPerUpdateUs), ra.CPUPerUpdate)
		if fw.ServerCPUPerUpdateUs > 0 || d.ServerCPUPerUpdateUs > 0 {
			row("server CPU per update", fmt.Sprintf("%.1f µs", fw.ServerCPUPerUpdateUs), fmt.Sprintf("%.1f µs", d.ServerCPUPerUpdateUs), benchfleet.Ratio(fw.ServerCPUPerUpdateUs, d.ServerCPUPerUpdateUs))
		}
		row("allocs per update", fmt.Sprintf("%.0f", fw.AllocsPerUpdate), fmt.Sprintf("%.0f", d.AllocsPerUpdate), benchfleet.Ratio(fw.AllocsPerUpdate, d.AllocsPerUpdate))
		row("messages in / update", fmt.Sprintf("%.2f", fw.ReceivedPerUpdate), fmt.Sprintf("%.2f", d.ReceivedPerUpdate), benchfleet.Ratio(fw.ReceivedPerUpdate, d.ReceivedPerUpdate))
		tw.Flush()
	}
}

// parsePIDs parses a comma-separated list of process IDs; empty is none.
func parsePIDs(list string) ([]int, error) {
	if list == "" {
		return nil, nil
	}
	var pids []int
	for _, f := range strings.Split(list, ",") {
		pid, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || pid < 1 {
			return nil, fmt.Errorf("%q is not a process ID", f)
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d/stat", pid)); err != nil {
			return nil, fmt.Errorf("process %d: cannot read its CPU time (Linux's /proc/%d/stat): %v", pid, pid, err)
		}
		pids = append(pids, pid)
	}
	return pids, nil
}

func verdict(ok bool, target string) string {
	if ok {
		return target + " met"
	}
	return target + " missed"
}

func msString(ms float64) string { return fmt.Sprintf("%.2f ms", ms) }

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
