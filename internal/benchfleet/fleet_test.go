package benchfleet

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shadowsync/shadowsync/internal/testserver"
	"github.com/shadowsync/shadowsync/localiot"
)

// memberEnv, set in a test binary's environment, makes it run RunMember with the
// flags RunFleet appends instead of the tests: the member processes of
// TestRunFleet, as shadowsync's `bench fleet-member` is for the command.
const memberEnv = "BENCHFLEET_TEST_MEMBER"

func TestMain(m *testing.M) {
	if os.Getenv(memberEnv) == "1" {
		os.Exit(testMember(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// testMember parses the flags of MemberOptions and runs RunMember until SIGTERM or
// the end of stdin.
func testMember(args []string) int {
	fs := flag.NewFlagSet("member", flag.ContinueOnError)
	var o MemberOptions
	fs.StringVar(&o.Endpoint, "endpoint", "", "")
	fs.StringVar(&o.Group, "group", "", "")
	fs.StringVar(&o.Prefix, "prefix", "", "")
	fs.StringVar(&o.ClientID, "client-id", "", "")
	fs.IntVar(&o.Workers, "workers", 0, "")
	fs.StringVar(&o.CPUProfile, "cpuprofile", "", "")
	logLevel := fs.String("log-level", "warn", "")
	parent := fs.Bool("stdin-is-parent", false, "")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return 2
	}
	o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if *parent {
		o.Parent = os.Stdin
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := RunMember(ctx, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// TestRunFleet measures a tiny fleet with 1 and 2 member processes (this test
// binary, as members) and checks the report's shape: a result per count, the
// members' stats, scaling against 1 process, notes. It asserts nothing about speed.
func TestRunFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("starts member processes")
	}
	t.Setenv(memberEnv, "1") // inherited by the members
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ep := testserver.Start(t, localiot.Options{}).Endpoints().Plain
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	rep, err := RunFleet(ctx, FleetOptions{
		Options:   Options{Endpoint: ep, Things: 20, Rounds: 1, Workers: 4, Logger: testserver.Logger(t)},
		Processes: []int{1, 2}, Member: []string{bin}, MemberLogLevel: "error", MemberStderr: os.Stderr,
		ServerInProcess: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Mode != "fleet" || rep.Things != 20 || rep.Rounds != 1 || rep.WorkersPerProcess != 4 || rep.Endpoint != ep {
		t.Errorf("report %+v; want fleet mode, 20 things, 1 round, 4 workers on %s", rep, ep)
	}
	if len(rep.Results) != 2 {
		t.Fatalf("%d results, want 2", len(rep.Results))
	}
	for i, res := range rep.Results {
		if res.Processes != i+1 || res.Updates != 20 || res.UpdatesPerSec <= 0 || !(0 < res.P50Ms && res.P50Ms <= res.P99Ms) {
			t.Errorf("result %d: %+v; want %d processes, 20 updates, positive rates and latencies", i, res, i+1)
		}
		if res.Reconciles["success"] == 0 {
			t.Errorf("result %d: no successful reconcile in the members' stats: %v", i, res.Reconciles)
		}
		// MembersCPUPerUpdateUs may be 0 on any platform: /proc counts in ticks of
		// 10 ms, more than a round of 20 things may take.
	}
	if _, ok := rep.Scaling["2"]; !ok || len(rep.Scaling) != 1 || rep.Results[0].ThroughputVs1 != 1 {
		t.Errorf("scaling %v, 1 process vs 1 %v; want the ratio for 2 processes alone, and 1", rep.Scaling, rep.Results[0].ThroughputVs1)
	}
	if len(rep.Notes) == 0 || !strings.Contains(rep.Notes[0], "the server, the app") {
		t.Errorf("notes %q; want the first to count the server in", rep.Notes)
	}
}

func TestRunFleetOptions(t *testing.T) {
	ep := "mqtt://127.0.0.1:1"
	for _, o := range []FleetOptions{
		{Options: Options{Endpoint: ep}, Member: []string{"x"}},
		{Options: Options{Endpoint: ep}, Member: []string{"x"}, Processes: []int{0}},
		{Options: Options{Endpoint: ep}, Member: []string{"x"}, Processes: []int{MaxProcesses + 1}},
		{Options: Options{Endpoint: ep}, Member: []string{"x"}, Processes: []int{1, 2, 1}},
		{Options: Options{Endpoint: ep}, Processes: []int{1}},
		{Options: Options{Endpoint: "http://127.0.0.1:1"}, Member: []string{"x"}, Processes: []int{1}},
	} {
		if _, err := RunFleet(t.Context(), o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}

// TestFleetSideMemberExits: a member that exits before its ready line fails Start
// at once, with errMemberExited, leaving nothing running.
func TestFleetSideMemberExits(t *testing.T) {
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// Without memberEnv, the test binary rejects the members' flags and exits.
	s := &fleetSide{command: []string{bin}, endpoint: "mqtt://127.0.0.1:1", group: "g", n: 2, workers: 1,
		logLevel: "error", stderr: io.Discard, log: slog.New(slog.DiscardHandler)}
	if err := s.Start(t.Context()); !errors.Is(err, errMemberExited) {
		t.Fatalf("Start: %v; want %v", err, errMemberExited)
	}
	for _, m := range s.members {
		select {
		case <-m.done:
		default:
			t.Errorf("%s still running after a failed Start", m.name)
		}
	}
}

// TestRunMember: a member prints its ready line once subscribed, and once its
// parent pipe closes its stats line, and returns nil.
func TestRunMember(t *testing.T) {
	ep := testserver.Start(t, localiot.Options{}).Endpoints().Plain
	parentR, parentW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := RunMember(t.Context(), MemberOptions{Endpoint: ep, Group: "g", Prefix: "x-", ClientID: "member-test",
			Parent: parentR, Logger: testserver.Logger(t)}, outW)
		outW.Close()
		done <- err
	}()
	lines := bufio.NewScanner(outR)
	if !lines.Scan() || !strings.HasPrefix(lines.Text(), readyPrefix) {
		t.Fatalf("first line %q, want the ready line", lines.Text())
	}
	parentW.Close()
	if !lines.Scan() || !strings.HasPrefix(lines.Text(), statsPrefix) {
		t.Errorf("line after the parent went %q, want the stats line", lines.Text())
	}
	for lines.Scan() {
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("RunMember: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("RunMember did not return within 10s of its parent's going")
	}
}

func TestRunMemberNeedsEndpoint(t *testing.T) {
	if err := RunMember(t.Context(), MemberOptions{}, io.Discard); !errors.Is(err, errNoEndpoint) {
		t.Errorf("RunMember without endpoint: %v; want %v", err, errNoEndpoint)
	}
}

func TestFleetReportScale(t *testing.T) {
	rep := &FleetReport{NumCPU: 2, Scaling: map[string]float64{}, Results: []FleetResult{
		{Processes: 2, UpdatesPerSec: 300}, {Processes: 1, UpdatesPerSec: 200}, {Processes: 3, UpdatesPerSec: 100},
	}}
	rep.scale()
	if rep.Results[0].ThroughputVs1 != 1.5 || rep.Results[1].ThroughputVs1 != 1 || rep.Scaling["3"] != 0.5 || len(rep.Scaling) != 2 {
		t.Errorf("results %+v, scaling %v", rep.Results, rep.Scaling)
	}
	if n := fleetNotes(rep, false); len(n) != 4 || strings.Contains(n[0], "server") {
		t.Errorf("notes with 2 CPUs for 3 processes, server elsewhere: %q", n)
	}
	without1 := &FleetReport{NumCPU: 64, Scaling: map[string]float64{}, Results: []FleetResult{{Processes: 2, UpdatesPerSec: 300}}}
	without1.scale()
	if without1.Results[0].ThroughputVs1 != 0 || len(without1.Scaling) != 0 {
		t.Errorf("without 1 process: %+v, scaling %v; want no ratio", without1.Results, without1.Scaling)
	}
	if n := fleetNotes(without1, true); len(n) != 3 {
		t.Errorf("notes with 64 CPUs: %q; want no word on the machine's limit", n)
	}
}
