package reconciler_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/shadowsync/shadowsync/jobstate"
	"github.com/shadowsync/shadowsync/reconciler"
)

// TestJobFleetSharedByTwoManagers: two managers in one shared-subscription group run
// the jobs of every thing with a prefix, discovered from notify-next. A thousand
// things each get a job (one job per thing: localiot's cost per update grows with a
// job's targets); all succeed, each handler runs exactly once per job, both managers
// take part, and a thing outside the prefix is left alone.
func TestJobFleetSharedByTwoManagers(t *testing.T) {
	const n = 1000
	e := newJobEnv(t)
	var mu sync.Mutex
	calls := map[string]int{}
	var per [2]int
	for i := range 2 {
		m, _ := e.startJobs(reconciler.JobOptions{Name: "fleet", Fleet: &reconciler.JobFleet{Prefix: "fj-", Group: "jobbers"}},
			reconciler.JobHandlerFunc[Firmware](func(ctx context.Context, job reconciler.Job[Firmware]) (reconciler.JobResult, error) {
				mu.Lock()
				calls[job.ID]++
				per[i]++
				mu.Unlock()
				return succeed(ctx, job)
			}))
		if err := m.Conn().AwaitConnection(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	e.create("other-job", `{"version":"1.0"}`, "other-1")
	for i := range n {
		th := fmt.Sprintf("fj-%04d", i)
		e.create("fw-"+th, `{"version":"3.0"}`, th)
	}
	eventually(t, 2*wait, func() error {
		for i := range n {
			th := fmt.Sprintf("fj-%04d", i)
			if x := e.execution("fw-"+th, th); x.Status != jobstate.Succeeded {
				return fmt.Errorf("%s: %s %v", th, x.Status, x.StatusDetails)
			}
		}
		return nil
	})
	t.Logf("%d jobs on %d things, two fleet members, in %v", n, n, time.Since(start))
	mu.Lock()
	defer mu.Unlock()
	if len(calls) != n {
		t.Errorf("handlers ran for %d jobs, want %d", len(calls), n)
	}
	for id, c := range calls {
		if c != 1 {
			t.Errorf("job %s ran %d times", id, c)
		}
	}
	if per[0] == 0 || per[1] == 0 {
		t.Errorf("the group did not share the fleet: %d and %d jobs", per[0], per[1])
	}
	if x := e.execution("other-job", "other-1"); x.Status != jobstate.Queued {
		t.Errorf("a thing outside the prefix had its job run: %s", x.Status)
	}
}

// TestJobFleetAlone: a fleet of one process (no Group) discovers a thing at
// its notify-next and runs its jobs in order, as a listed thing's worker does.
func TestJobFleetAlone(t *testing.T) {
	e := newJobEnv(t)
	ran := make(chan string, 2)
	m, _ := e.startJobs(reconciler.JobOptions{Fleet: &reconciler.JobFleet{Prefix: "solo-"}}, reconciler.JobHandlerFunc[Firmware](func(ctx context.Context, job reconciler.Job[Firmware]) (reconciler.JobResult, error) {
		ran <- job.ID
		return succeed(ctx, job)
	}))
	if err := m.Conn().AwaitConnection(t.Context()); err != nil {
		t.Fatal(err)
	}
	e.create("fw-1", `{"version":"1.0"}`, "solo-1")
	e.create("fw-2", `{"version":"2.0"}`, "solo-1")
	if id := recv(t, ran, "first job"); id != "fw-1" {
		t.Errorf("first job %s", id)
	}
	if id := recv(t, ran, "second job"); id != "fw-2" {
		t.Errorf("second job %s", id)
	}
	e.awaitStatus("fw-2", "solo-1", jobstate.Succeeded)
}

func TestJobFleetOptionsErrors(t *testing.T) {
	m, _ := reconciler.NewManager(fastConfig("mqtt://127.0.0.1:1"), reconciler.Options{})
	h := reconciler.JobHandlerFunc[Firmware](succeed)
	for _, opts := range []reconciler.JobOptions{
		{Things: []string{"a"}, Fleet: &reconciler.JobFleet{}},
		{Fleet: &reconciler.JobFleet{Group: "a/b"}},
	} {
		if _, err := reconciler.RegisterJobs(m, opts, h); err == nil {
			t.Errorf("RegisterJobs accepted %+v", opts)
		}
	}
	if _, err := reconciler.RegisterJobs(m, reconciler.JobOptions{Fleet: &reconciler.JobFleet{Prefix: "a-"}}, h); err != nil {
		t.Fatal(err)
	}
	if _, err := reconciler.RegisterJobs(m, reconciler.JobOptions{Name: "second", Fleet: &reconciler.JobFleet{Prefix: "b-"}}, h); err == nil {
		t.Error("a second fleet job controller was accepted")
	}
}
