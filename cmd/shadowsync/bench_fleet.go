package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/shadowsync/shadowsync/internal/benchfleet"
)

// parseProcessCounts reads --fleet-processes: a comma-separated list of distinct
// process counts, each 1 to benchfleet.MaxProcesses.
func parseProcessCounts(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > benchfleet.MaxProcesses {
			return nil, fmt.Errorf("%q: want process counts of 1 to %d, separated by commas", f, benchfleet.MaxProcesses)
		}
		if slices.Contains(out, n) {
			return nil, fmt.Errorf("%d appears twice", n)
		}
		out = append(out, n)
	}
	return out, nil
}

// fleetWorkers is the members' worker count: --workers if it was given, else
// benchfleet.DefaultMemberWorkers.
func fleetWorkers(fs *flag.FlagSet, workers int) int {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == "workers" })
	if set {
		return workers
	}
	return benchfleet.DefaultMemberWorkers
}

// runBenchFleet runs bench's fleet mode, its members being this binary's hidden
// `bench fleet-member`, and prints the table and the JSON line.
func runBenchFleet(ctx context.Context, opts benchfleet.FleetOptions, jsonOnly bool, stdout io.Writer) error {
	bin, err := os.Executable()
	if err != nil {
		return fmt.Errorf("fleet mode: find this binary to start the members: %w", err)
	}
	opts.Member = []string{bin, "bench", fleetMemberCommand}
	rep, err := benchfleet.RunFleet(ctx, opts)
	if err != nil {
		return err
	}
	if opts.ServerInProcess {
		rep.Endpoint = "localiot in the bench process (" + rep.Endpoint + ")"
	}
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

// printFleetTable prints the fleet report as a table.
func printFleetTable(w io.Writer, r *benchfleet.FleetReport) {
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
