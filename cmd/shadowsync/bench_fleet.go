package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/shadowsync/shadowsync/internal/benchfleet"
)

// maxFleetProcesses bounds one entry of --fleet-processes.
const maxFleetProcesses = 32

// fleetMemberWorkers is each member's MaxConcurrentReconciles unless --workers is
// given: the same as reconciler.Echo and examples/fleet.
const fleetMemberWorkers = 16

// fleetBench is the fleet mode of bench: the fleet echo run by N processes of one
// shared-subscription group, for each N in processes, on one seeded fleet.
type fleetBench struct {
	opts       benchfleet.Options // Endpoint set; Workers is each member's
	processes  []int
	inProcess  bool   // the server is localiot in this process
	cpuProfile string // each member writes its profile to cpuProfile.n<N>.p<i>
	logLevel   string // the members' log level
}

// parseProcessCounts reads --fleet-processes: a comma-separated list of distinct
// process counts, each 1 to maxFleetProcesses.
func parseProcessCounts(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > maxFleetProcesses {
			return nil, fmt.Errorf("%q: want process counts of 1 to %d, separated by commas", f, maxFleetProcesses)
		}
		if slices.Contains(out, n) {
			return nil, fmt.Errorf("%d appears twice", n)
		}
		out = append(out, n)
	}
	return out, nil
}

// fleetWorkers is the members' worker count: --workers if it was given, else
// fleetMemberWorkers.
func fleetWorkers(fs *flag.FlagSet, workers int) int {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == "workers" })
	if set {
		return workers
	}
	return fleetMemberWorkers
}

// fleetReport is the JSON line of the fleet mode.
type fleetReport struct {
	Mode              string        `json:"mode"` // "fleet"
	Things            int           `json:"things"`
	Rounds            int           `json:"rounds"`
	WorkersPerProcess int           `json:"workers_per_process"`
	Window            int           `json:"window"`
	NumCPU            int           `json:"num_cpu"`
	Endpoint          string        `json:"endpoint"`
	Results           []fleetResult `json:"results"`
	// Scaling is, for each process count N but 1, the throughput with N processes
	// over the throughput with 1; empty when 1 was not measured.
	Scaling map[string]float64 `json:"scaling"`
	Notes   []string           `json:"notes"`
}

// fleetResult is what was measured with one process count. Updates to MaxMs are
// measured as by the plain bench (benchfleet.Result).
type fleetResult struct {
	Processes     int     `json:"processes"`
	Updates       int     `json:"updates"`
	Seconds       float64 `json:"seconds"`
	UpdatesPerSec float64 `json:"updates_per_sec"`
	P50Ms         float64 `json:"p50_ms"`
	P99Ms         float64 `json:"p99_ms"`
	MaxMs         float64 `json:"max_ms"`
	// MembersCPUPerUpdateUs is the CPU time of all members during the measured
	// rounds per update; zero where the platform does not tell (not Linux).
	MembersCPUPerUpdateUs float64 `json:"members_cpu_us_per_update"`
	// BenchCPUPerUpdateUs is the bench process's: the app, the watcher and, when
	// in process, the server.
	BenchCPUPerUpdateUs float64 `json:"bench_cpu_us_per_update"`
	// StartSeconds is from spawning the members to the warm-up round's end.
	StartSeconds float64 `json:"start_seconds"`
	// ThroughputVs1 is UpdatesPerSec over that of 1 process.
	ThroughputVs1 float64 `json:"throughput_vs_1,omitempty"`
	// Reconciles and Requests sum the members' counters over their whole life,
	// warm-up included: reconciles by result ("success", "conflict"…), shadow
	// requests by operation and outcome ("update rejected"…).
	Reconciles map[string]int `json:"reconciles"`
	Requests   map[string]int `json:"requests"`
}

// run measures each process count in turn and prints the table and the JSON line.
func (b fleetBench) run(ctx context.Context, jsonOnly bool, stdout, stderr io.Writer) error {
	bin, err := os.Executable()
	if err != nil {
		return fmt.Errorf("fleet mode: find this binary to start the members: %w", err)
	}
	bench, err := benchfleet.NewBench(ctx, b.opts)
	if err != nil {
		return err
	}
	defer bench.Close()
	opts := bench.Options()
	var id [3]byte
	_, _ = rand.Read(id[:])

	rep := fleetReport{
		Mode: "fleet", Things: opts.Things, Rounds: opts.Rounds, WorkersPerProcess: opts.Workers,
		Window: opts.Window, NumCPU: runtime.NumCPU(), Endpoint: opts.Endpoint, Scaling: map[string]float64{},
	}
	if b.inProcess {
		rep.Endpoint = "localiot in the bench process (" + opts.Endpoint + ")"
	}
	for _, n := range b.processes {
		side := &fleetSide{
			bin: bin, endpoint: opts.Endpoint, group: fmt.Sprintf("bench-%x-n%d", id, n), n: n,
			workers: opts.Workers, logLevel: b.logLevel, stderr: stderr, log: opts.Logger,
		}
		if b.cpuProfile != "" {
			side.cpuProfile = fmt.Sprintf("%s.n%d", b.cpuProfile, n)
		}
		opts.Logger.Info("fleet: measuring", "processes", n, "group", side.group)
		res, err := bench.Measure(ctx, fmt.Sprintf("fleet of %d", n), side)
		if err != nil {
			return err
		}
		st := side.stats()
		rep.Results = append(rep.Results, fleetResult{
			Processes: n, Updates: res.Updates, Seconds: res.Seconds, UpdatesPerSec: res.UpdatesPerSec,
			P50Ms: res.P50Ms, P99Ms: res.P99Ms, MaxMs: res.MaxMs,
			MembersCPUPerUpdateUs: res.SideCPUPerUpdateUs, BenchCPUPerUpdateUs: res.CPUPerUpdateUs,
			StartSeconds: res.StartSeconds, Reconciles: st.Reconciles, Requests: st.Requests,
		})
	}
	if i := slices.IndexFunc(rep.Results, func(r fleetResult) bool { return r.Processes == 1 }); i >= 0 {
		one := rep.Results[i].UpdatesPerSec
		for j := range rep.Results {
			r := &rep.Results[j]
			r.ThroughputVs1 = ratioOf(r.UpdatesPerSec, one)
			if r.Processes != 1 {
				rep.Scaling[strconv.Itoa(r.Processes)] = r.ThroughputVs1
			}
		}
	}
	rep.Notes = fleetNotes(rep, b.inProcess)

	if !jsonOnly {
		printFleetTable(stdout, rep)
	}
	line, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s\n", line)
	return err
}

// fleetNotes says how to read the results on this machine.
func fleetNotes(rep fleetReport, inProcess bool) []string {
	most := 0
	for _, r := range rep.Results {
		most = max(most, r.Processes)
	}
	sharers := "the app and the watcher (this process)"
	if inProcess {
		sharers = "the server, the app and the watcher (this process)"
	}
	notes := []string{
		fmt.Sprintf("%d CPU(s) are shared by %s and every member process.", rep.NumCPU, sharers),
	}
	if rep.NumCPU <= most+1 {
		notes = append(notes, fmt.Sprintf(
			"With %d CPUs, scaling is limited by the machine: %d member processes plus the bench process want more CPUs than there are, so extra processes add no CPU; a gain from N=1 is waiting (report round trips) that more processes overlap, and a loss is their added messages and conflicts competing for the same CPUs.",
			rep.NumCPU, most))
	}
	notes = append(notes,
		"Every member receives its share of the deltas and of the documents messages; the delta and the documents message of one update can reach two members, and a report from a stale cache fails with 409 and is retried (reconciles \"conflict\", requests \"update rejected\").",
		"Members' CPU is read from /proc during the measured rounds; reconcile and request counts cover their whole life, warm-up included.")
	return notes
}

// printFleetTable prints the fleet report as a table.
func printFleetTable(w io.Writer, r fleetReport) {
	fmt.Fprintf(w, "shadowsync bench, fleet mode: %d things, %d rounds, %d worker(s) per process, window %d, %d CPUs\nserver: %s\n\n",
		r.Things, r.Rounds, r.WorkersPerProcess, r.Window, r.NumCPU, r.Endpoint)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "processes\tupdates/s\tvs 1 process\tp50 latency\tp99 latency\tmax latency\tmembers CPU/update\tbench CPU/update\tconflicts\tstart to warm\t")
	for _, x := range r.Results {
		vs := "-"
		if x.ThroughputVs1 > 0 {
			vs = fmt.Sprintf("%.2f", x.ThroughputVs1)
		}
		memCPU := "-"
		if x.MembersCPUPerUpdateUs > 0 {
			memCPU = fmt.Sprintf("%.0f µs", x.MembersCPUPerUpdateUs)
		}
		fmt.Fprintf(tw, "%d\t%.0f\t%s\t%s\t%s\t%s\t%s\t%.0f µs\t%d\t%.2f s\t\n",
			x.Processes, x.UpdatesPerSec, vs, msString(x.P50Ms), msString(x.P99Ms), msString(x.MaxMs),
			memCPU, x.BenchCPUPerUpdateUs, x.Reconciles["conflict"], x.StartSeconds)
	}
	tw.Flush()
	fmt.Fprintln(w)
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}
