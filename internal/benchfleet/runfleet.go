package benchfleet

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strconv"
)

// MaxProcesses bounds a process count of FleetOptions.Processes, so that a typo
// does not fork a machine to its knees.
const MaxProcesses = 32

// FleetOptions configure RunFleet: the fleet echo run by N member processes of one
// shared-subscription group, for each N of Processes, on one seeded fleet.
type FleetOptions struct {
	// Options are the fleet's and the rounds', as for Run. Endpoint is required;
	// Workers is each member's MaxConcurrentReconciles (zero means
	// DefaultMemberWorkers); CPUProfile is not used.
	Options
	// Processes lists the process counts to measure, in order, each 1 to
	// MaxProcesses and none twice.
	Processes []int
	// Member is the command line that starts one member process, before the flags of
	// MemberOptions that RunFleet appends; the process must run RunMember with them.
	// shadowsync passes its own binary and `bench fleet-member`.
	Member []string
	// MemberCPUProfile, when set, makes member i of the run with N processes write a
	// CPU profile of its whole life to MemberCPUProfile.n<N>.p<i>.
	MemberCPUProfile string
	// MemberLogLevel is the members' log level: debug, info, warn or error. Empty
	// means warn.
	MemberLogLevel string
	// MemberStderr receives the members' stderr. Nil discards it.
	MemberStderr io.Writer
	// ServerInProcess says that the server is in this process, sharing its CPUs; the
	// notes say so.
	ServerInProcess bool
}

// FleetReport is the outcome of RunFleet: the JSON line of bench's fleet mode.
type FleetReport struct {
	// Mode is "fleet", telling this line from a Report.
	Mode              string        `json:"mode"`
	Things            int           `json:"things"`
	Rounds            int           `json:"rounds"`
	WorkersPerProcess int           `json:"workers_per_process"`
	Window            int           `json:"window"`
	NumCPU            int           `json:"num_cpu"`
	Endpoint          string        `json:"endpoint"`
	Results           []FleetResult `json:"results"`
	// Scaling is, for each process count N but 1, the throughput with N processes
	// over the throughput with 1; empty when 1 was not measured.
	Scaling map[string]float64 `json:"scaling"`
	// Notes say how to read the results on this machine.
	Notes []string `json:"notes"`
}

// FleetResult is what was measured with one process count. Updates to MaxMs are
// measured as by Run (Result).
type FleetResult struct {
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

// validProcesses checks FleetOptions.Processes.
func validProcesses(procs []int) error {
	if len(procs) == 0 {
		return errors.New("benchfleet: no process counts")
	}
	for i, n := range procs {
		if n < 1 || n > MaxProcesses {
			return fmt.Errorf("benchfleet: %d processes: want 1 to %d", n, MaxProcesses)
		}
		if slices.Contains(procs[:i], n) {
			return fmt.Errorf("benchfleet: %d processes appears twice", n)
		}
	}
	return nil
}

// RunFleet seeds the fleet's shadows once, then for each process count N starts N
// member processes in a shared-subscription group of their own, measures them as
// Run measures a side, stops them, and reports every N with its throughput over
// N=1's.
func RunFleet(ctx context.Context, opts FleetOptions) (*FleetReport, error) {
	if err := validProcesses(opts.Processes); err != nil {
		return nil, err
	}
	if len(opts.Member) == 0 {
		return nil, errors.New("benchfleet: no member command")
	}
	var err error
	if opts.Options, err = opts.Options.withDefaults(); err != nil {
		return nil, err
	}
	if opts.MemberLogLevel == "" {
		opts.MemberLogLevel = "warn"
	}
	if opts.MemberStderr == nil {
		opts.MemberStderr = io.Discard
	}
	b, err := newBench(ctx, opts.Options)
	if err != nil {
		return nil, err
	}
	defer b.close()
	log := opts.Logger
	var id [3]byte
	_, _ = rand.Read(id[:])

	rep := &FleetReport{
		Mode: "fleet", Things: opts.Things, Rounds: opts.Rounds, WorkersPerProcess: opts.Workers,
		Window: opts.Window, NumCPU: runtime.NumCPU(), Endpoint: opts.Endpoint, Scaling: map[string]float64{},
	}
	for _, n := range opts.Processes {
		side := &fleetSide{
			command: opts.Member, endpoint: opts.Endpoint, group: fmt.Sprintf("bench-%x-n%d", id, n), n: n,
			workers: opts.Workers, logLevel: opts.MemberLogLevel, stderr: opts.MemberStderr, log: log,
		}
		if opts.MemberCPUProfile != "" {
			side.cpuProfile = fmt.Sprintf("%s.n%d", opts.MemberCPUProfile, n)
		}
		log.Info("fleet: measuring", "processes", n, "group", side.group)
		res, err := b.measure(ctx, fmt.Sprintf("fleet of %d", n), side, nil)
		if err != nil {
			return nil, err
		}
		st := side.stats()
		rep.Results = append(rep.Results, FleetResult{
			Processes: n, Updates: res.Updates, Seconds: res.Seconds, UpdatesPerSec: res.UpdatesPerSec,
			P50Ms: res.P50Ms, P99Ms: res.P99Ms, MaxMs: res.MaxMs,
			MembersCPUPerUpdateUs: res.SideCPUPerUpdateUs, BenchCPUPerUpdateUs: res.CPUPerUpdateUs,
			StartSeconds: res.StartSeconds, Reconciles: st.Reconciles, Requests: st.Requests,
		})
	}
	rep.scale()
	rep.Notes = fleetNotes(rep, opts.ServerInProcess)
	return rep, nil
}

// scale fills in ThroughputVs1 and Scaling, if 1 process was measured.
func (rep *FleetReport) scale() {
	i := slices.IndexFunc(rep.Results, func(r FleetResult) bool { return r.Processes == 1 })
	if i < 0 {
		return
	}
	one := rep.Results[i].UpdatesPerSec
	for j := range rep.Results {
		r := &rep.Results[j]
		r.ThroughputVs1 = Ratio(r.UpdatesPerSec, one)
		if r.Processes != 1 {
			rep.Scaling[strconv.Itoa(r.Processes)] = r.ThroughputVs1
		}
	}
}

// fleetNotes says how to read the results on this machine.
func fleetNotes(rep *FleetReport, serverInProcess bool) []string {
	most := 0
	for _, r := range rep.Results {
		most = max(most, r.Processes)
	}
	sharers := "the app and the watcher (this process)"
	if serverInProcess {
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
