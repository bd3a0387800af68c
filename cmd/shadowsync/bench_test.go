package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shadowsync/shadowsync/internal/testserver"
	"github.com/shadowsync/shadowsync/localiot"
	"github.com/shadowsync/shadowsync/reconciler"
)

// benchReport is the part of bench's JSON line the tests read.
type benchReport struct {
	Things, Rounds, Workers int
	QoS0                    bool `json:"qos0"`
	Framework, Floor        struct {
		Updates            int     `json:"updates"`
		Seconds            float64 `json:"seconds"`
		UpdatesPerSec      float64 `json:"updates_per_sec"`
		P50Ms              float64 `json:"p50_ms"`
		P99Ms              float64 `json:"p99_ms"`
		MaxMs              float64 `json:"max_ms"`
		PeakHeapBytes      uint64  `json:"peak_heap_bytes"`
		HeapPerShadowBytes float64 `json:"heap_per_shadow_bytes"`
	}
	Ratios struct {
		Throughput float64 `json:"throughput"`
		P99        float64 `json:"p99"`
	}
}

// parseBench reads the JSON line bench prints last.
func parseBench(t *testing.T, out string) benchReport {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var r benchReport
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
		t.Fatalf("last line is not the JSON report: %v\n%s", err, out)
	}
	return r
}

// TestBenchSmallFleet runs bench as a user would, on a small fleet, and checks that
// its report is complete and consistent. It asserts nothing about speed.
func TestBenchSmallFleet(t *testing.T) {
	profile := filepath.Join(t.TempDir(), "cpu.pprof")
	cmd := []string{"bench", "--things", "20", "--rounds", "2", "--cpuprofile", profile, "--log-level", "warn"}
	code, out := runToEndStdout(t, cmd...)
	if code != 0 {
		t.Fatalf("exit code %d:\n%s", code, out)
	}
	for _, want := range []string{"framework", "floor", "updates/s", "p99 latency", "heap per shadow"} {
		if !strings.Contains(out, want) {
			t.Errorf("the table lacks %q:\n%s", want, out)
		}
	}
	r := parseBench(t, out)
	if r.Things != 20 || r.Rounds != 2 || r.Workers != reconciler.EchoWorkers {
		t.Errorf("things %d, rounds %d, workers %d; want 20, 2, %d (reconciler.Echo as it ships)", r.Things, r.Rounds, r.Workers, reconciler.EchoWorkers)
	}
	for name, side := range map[string]struct {
		updates            int
		secs, ups          float64
		p50, p99, max      float64
		peak               uint64
		heapPerShadowBytes float64
	}{
		"framework": {r.Framework.Updates, r.Framework.Seconds, r.Framework.UpdatesPerSec, r.Framework.P50Ms, r.Framework.P99Ms, r.Framework.MaxMs, r.Framework.PeakHeapBytes, r.Framework.HeapPerShadowBytes},
		"floor":     {r.Floor.Updates, r.Floor.Seconds, r.Floor.UpdatesPerSec, r.Floor.P50Ms, r.Floor.P99Ms, r.Floor.MaxMs, r.Floor.PeakHeapBytes, r.Floor.HeapPerShadowBytes},
	} {
		if side.updates != 40 {
			t.Errorf("%s: %d updates timed, want 20 things × 2 rounds", name, side.updates)
		}
		if side.secs <= 0 || side.ups <= 0 || side.peak == 0 {
			t.Errorf("%s: seconds %v, updates/s %v, peak heap %d; want all positive", name, side.secs, side.ups, side.peak)
		}
		if !(0 < side.p50 && side.p50 <= side.p99 && side.p99 <= side.max) {
			t.Errorf("%s: latency p50 %v, p99 %v, max %v; want 0 < p50 ≤ p99 ≤ max", name, side.p50, side.p99, side.max)
		}
	}
	if r.Ratios.Throughput <= 0 || r.Ratios.P99 <= 0 {
		t.Errorf("ratios %+v; want positive", r.Ratios)
	}
	if fi, err := os.Stat(profile); err != nil || fi.Size() == 0 {
		t.Errorf("CPU profile not written: %v", err)
	}
}

// TestBenchJSONOnly: with --json, the JSON line is all bench prints on stdout.
func TestBenchJSONOnly(t *testing.T) {
	code, out := runToEndStdout(t, "bench", "--things", "5", "--rounds", "1", "--workers", "4", "--qos0", "--json", "--log-level", "error")
	if code != 0 {
		t.Fatalf("exit code %d:\n%s", code, out)
	}
	if n := strings.Count(strings.TrimSpace(out), "\n"); n != 0 {
		t.Fatalf("%d lines on stdout, want the JSON line alone:\n%s", n+1, out)
	}
	if r := parseBench(t, out); r.Workers != 4 || !r.QoS0 || r.Framework.Updates != 5 || r.Floor.Updates != 5 {
		t.Errorf("workers %d, qos0 %v, updates %d and %d; want 4, true, 5 and 5", r.Workers, r.QoS0, r.Framework.Updates, r.Floor.Updates)
	}
}

func TestBenchUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"bench", "--things", "0"},
		{"bench", "--rounds", "-1"},
		{"bench", "--workers", "-1"},
		{"bench", "--log-level", "loud"},
		{"bench", "extra"},
	} {
		if code, out := runToEnd(t, nil, args...); code != 2 {
			t.Errorf("%v: exit code %d, want 2:\n%s", args, code, out)
		}
	}
	if code, out := runToEnd(t, nil, "bench", "--things", "3", "--endpoint", "http://127.0.0.1:1"); code != 1 || !strings.Contains(out, "mqtt://") {
		t.Errorf("bad endpoint: exit code %d, want 1 and a word on the URL:\n%s", code, out)
	}
}

// runToEndStdout runs shadowsync to completion and returns its exit code and its
// stdout alone, with stderr attached to failures.
func runToEndStdout(t *testing.T, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	var stderr strings.Builder
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Stderr = &stderr
	out, _ := cmd.Output()
	if cmd.ProcessState.ExitCode() != 0 {
		return cmd.ProcessState.ExitCode(), string(out) + "\nstderr:\n" + stderr.String()
	}
	return 0, string(out)
}

// TestBenchServerCPU runs bench against a server in another process, as the
// separate-server measure does, naming that process with --server-pid: each side's
// report then carries what it cost the server. The server here is localiot in the
// test process, so the PID given is the test's own. Another process's CPU time is
// read in clock ticks (10 ms): 1,000 updates per side make it count.
func TestBenchServerCPU(t *testing.T) {
	ep := testserver.Start(t, localiot.Options{}).Endpoints().Plain
	code, out := runToEndStdout(t, "bench", "--endpoint", ep, "--server-pid", strconv.Itoa(os.Getpid()),
		"--things", "100", "--rounds", "10", "--log-level", "warn")
	if code != 0 {
		t.Fatalf("exit code %d:\n%s", code, out)
	}
	for _, want := range []string{"server CPU per update", "allocs per update"} {
		if !strings.Contains(out, want) {
			t.Errorf("the table lacks %q:\n%s", want, out)
		}
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var r struct {
		Framework, Floor struct {
			ServerCPU float64 `json:"server_cpu_us_per_update"`
			Allocs    float64 `json:"allocs_per_update"`
		}
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
		t.Fatalf("last line is not the JSON report: %v\n%s", err, out)
	}
	// Every update costs the server a request and its replies, and every side
	// allocates for its messages: all four are positive.
	if r.Framework.ServerCPU <= 0 || r.Floor.ServerCPU <= 0 || r.Framework.Allocs <= 0 || r.Floor.Allocs <= 0 {
		t.Errorf("server CPU per update %v / %v, allocs per update %v / %v; want all positive",
			r.Framework.ServerCPU, r.Floor.ServerCPU, r.Framework.Allocs, r.Floor.Allocs)
	}
}

func TestBenchServerPIDErrors(t *testing.T) {
	pid := strconv.Itoa(os.Getpid())
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--server-pid", "mosquitto", "--endpoint", "mqtt://127.0.0.1:1"}, `"mosquitto" is not a process ID`},
		{[]string{"--server-pid", "0", "--endpoint", "mqtt://127.0.0.1:1"}, `"0" is not a process ID`},
		{[]string{"--server-pid", "2147483646", "--endpoint", "mqtt://127.0.0.1:1"}, "process 2147483646: cannot read its CPU time"},
		{[]string{"--server-pid", pid}, "--server-pid needs --endpoint"},
	} {
		code, out := runToEnd(t, nil, append([]string{"bench"}, c.args...)...)
		if code != 2 || !strings.Contains(out, c.want) {
			t.Errorf("%v: exit code %d, want 2 and %q:\n%s", c.args, code, c.want, out)
		}
	}
}

// TestBenchDocumentsFloor: with --documents-floor, bench measures a third side, a
// bare client on the framework's protocol: it receives both documents messages of
// each update (the app's change and its own report's) and publishes one report, and
// the report compares the framework with it.
func TestBenchDocumentsFloor(t *testing.T) {
	code, out := runToEndStdout(t, "bench", "--things", "20", "--rounds", "3", "--documents-floor", "--log-level", "warn")
	if code != 0 {
		t.Fatalf("exit code %d:\n%s", code, out)
	}
	if !strings.Contains(out, "documents floor") {
		t.Errorf("the table lacks the documents floor:\n%s", out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var r struct {
		Docs *struct {
			Updates   int     `json:"updates"`
			Received  float64 `json:"received_per_update"`
			Published float64 `json:"published_per_update"`
		} `json:"floor_documents"`
		Ratios *struct {
			Throughput float64 `json:"throughput"`
		} `json:"ratios_documents"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
		t.Fatalf("last line is not the JSON report: %v\n%s", err, out)
	}
	if r.Docs == nil || r.Ratios == nil {
		t.Fatalf("no floor_documents or ratios_documents in the report:\n%s", lines[len(lines)-1])
	}
	// Two documents messages per update, give or take those of the last reports of
	// a round, which may land after it is over (it ends when the watcher sees the
	// report accepted): between one and a little over two.
	if r.Docs.Updates != 60 || r.Docs.Received <= 1 || r.Docs.Received >= 2.1 || r.Docs.Published != 1 || r.Ratios.Throughput <= 0 {
		t.Errorf("documents floor: %d updates, %v in and %v out per update, throughput ratio %v; want 60, over 1 and under 2.1, 1, and positive",
			r.Docs.Updates, r.Docs.Received, r.Docs.Published, r.Ratios.Throughput)
	}
}
