package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shadowsync/shadowsync/internal/benchfleet"
	"github.com/shadowsync/shadowsync/internal/testserver"
	"github.com/shadowsync/shadowsync/localiot"
)

// TestBenchFleetProcesses runs bench's fleet mode as a user would, with member
// processes of this binary, on a tiny fleet, and checks that its JSON line has one
// result per process count and the scaling ratio. It asserts nothing about speed.
func TestBenchFleetProcesses(t *testing.T) {
	profile := filepath.Join(t.TempDir(), "member.pprof")
	code, out := runToEndStdout(t, "bench", "--things", "20", "--rounds", "1", "--fleet-processes", "1,2",
		"--cpuprofile", profile, "--log-level", "error")
	if code != 0 {
		t.Fatalf("exit code %d:\n%s", code, out)
	}
	for _, want := range []string{"processes", "updates/s", "vs 1 process", "p99 latency", "note: "} {
		if !strings.Contains(out, want) {
			t.Errorf("the table lacks %q:\n%s", want, out)
		}
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var r struct {
		Mode              string `json:"mode"`
		Things            int    `json:"things"`
		Rounds            int    `json:"rounds"`
		WorkersPerProcess int    `json:"workers_per_process"`
		Results           []struct {
			Processes     int            `json:"processes"`
			Updates       int            `json:"updates"`
			UpdatesPerSec float64        `json:"updates_per_sec"`
			P50Ms         float64        `json:"p50_ms"`
			P99Ms         float64        `json:"p99_ms"`
			Reconciles    map[string]int `json:"reconciles"`
		} `json:"results"`
		Scaling map[string]float64 `json:"scaling"`
		Notes   []string           `json:"notes"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
		t.Fatalf("last line is not the JSON report: %v\n%s", err, out)
	}
	if r.Mode != "fleet" || r.Things != 20 || r.Rounds != 1 || r.WorkersPerProcess != benchfleet.DefaultMemberWorkers {
		t.Errorf("mode %q, things %d, rounds %d, workers %d; want fleet, 20, 1, %d", r.Mode, r.Things, r.Rounds, r.WorkersPerProcess, benchfleet.DefaultMemberWorkers)
	}
	if len(r.Results) != 2 {
		t.Fatalf("%d results, want one for 1 and one for 2 processes:\n%s", len(r.Results), out)
	}
	for i, res := range r.Results {
		if res.Processes != i+1 || res.Updates != 20 || res.UpdatesPerSec <= 0 || !(0 < res.P50Ms && res.P50Ms <= res.P99Ms) {
			t.Errorf("result %d: %+v; want %d processes, 20 updates, positive rates and latencies", i, res, i+1)
		}
		if res.Reconciles["success"] == 0 {
			t.Errorf("result %d: members reported no successful reconcile (no stats line?): %v", i, res.Reconciles)
		}
	}
	if _, ok := r.Scaling["2"]; !ok || len(r.Scaling) != 1 {
		t.Errorf("scaling %v; want the ratio for 2 processes alone", r.Scaling)
	}
	if len(r.Notes) == 0 {
		t.Error("no notes")
	}
	for _, p := range []string{".n1.p0", ".n2.p0", ".n2.p1"} {
		if fi, err := os.Stat(profile + p); err != nil || fi.Size() == 0 {
			t.Errorf("member CPU profile %s not written: %v", p, err)
		}
	}
}

func TestBenchFleetUsageErrors(t *testing.T) {
	for _, list := range []string{"0", "1,,2", "a", "1,1", "33"} {
		if code, out := runToEnd(t, nil, "bench", "--fleet-processes", list); code != 2 {
			t.Errorf("--fleet-processes %q: exit code %d, want 2:\n%s", list, code, out)
		}
	}
	if code, out := runToEnd(t, nil, "bench", fleetMemberCommand, "--group", "g"); code != 2 || !strings.Contains(out, "--endpoint") {
		t.Errorf("member without --endpoint: exit code %d, want 2 and a word on --endpoint:\n%s", code, out)
	}
}

func TestParseProcessCounts(t *testing.T) {
	got, err := parseProcessCounts("1, 2,3")
	if err != nil || len(got) != 3 || got[0] != 1 || got[2] != 3 {
		t.Errorf("parseProcessCounts(\"1, 2,3\") = %v, %v; want [1 2 3]", got, err)
	}
}

// TestFleetMemberStopsOnSIGTERM: the hidden subcommand a member is re-executed as
// prints its ready line once subscribed, and on SIGTERM its stats line, and exits 0.
// The lines' prefixes are those benchfleet.RunFleet reads.
func TestFleetMemberStopsOnSIGTERM(t *testing.T) {
	ep := testserver.Start(t, localiot.Options{}).Endpoints().Plain
	p := start(t, nil, "bench", fleetMemberCommand, "--endpoint", ep, "--group", "g", "--prefix", "x-", "--client-id", "member-test")
	if l := p.nextLine(t); !strings.HasPrefix(l, "ready: ") {
		t.Fatalf("first line %q, want the ready line", l)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if l := p.nextLine(t); !strings.HasPrefix(l, "stats: ") {
		t.Errorf("line after SIGTERM %q, want the stats line", l)
	}
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("member exit: %v\nstderr:\n%s", err, p.stderr)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("member did not exit within 10s of SIGTERM")
	}
}
