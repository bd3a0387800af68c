package reconciler_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shadowsync/shadowsync/internal/testserver"
	"github.com/shadowsync/shadowsync/jobsclient"
	"github.com/shadowsync/shadowsync/jobstate"
	"github.com/shadowsync/shadowsync/localiot"
	"github.com/shadowsync/shadowsync/reconciler"
	"github.com/shadowsync/shadowsync/transport"
)

// Firmware is the job document of these tests.
type Firmware struct {
	Version string `json:"version" jsonschema:"required,pattern=^[0-9]+\\.[0-9]+$"`
	Channel string `json:"channel,omitempty" jsonschema:"enum=stable,enum=beta"`
}

// jobClock is a localiot.Clock that moves only when a test advances it.
type jobClock struct {
	mu     sync.Mutex
	now    time.Time
	timers map[*int]jobTimer
}

type jobTimer struct {
	at time.Time
	f  func()
}

func newJobClock() *jobClock {
	return &jobClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), timers: map[*int]jobTimer{}}
}

func (c *jobClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *jobClock) AfterFunc(d time.Duration, f func()) func() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := new(int)
	c.timers[k] = jobTimer{at: c.now.Add(d), f: f}
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		_, ok := c.timers[k]
		delete(c.timers, k)
		return ok
	}
}

// Advance moves the clock on by d and runs the timers due, on this goroutine.
func (c *jobClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []func()
	for k, tm := range c.timers {
		if !tm.at.After(c.now) {
			due = append(due, tm.f)
			delete(c.timers, k)
		}
	}
	c.mu.Unlock()
	for _, f := range due {
		f()
	}
}

// jobEnv is a localiot with a fake jobs clock.
type jobEnv struct {
	t     *testing.T
	srv   *localiot.Server
	clock *jobClock
}

func newJobEnv(t *testing.T) *jobEnv {
	clock := newJobClock()
	srv := testserver.Start(t, localiot.Options{Clock: clock, Limits: localiot.Limits{Off: true}})
	return &jobEnv{t: t, srv: srv, clock: clock}
}

func (e *jobEnv) create(id, doc string, things ...string) {
	e.t.Helper()
	if _, err := e.srv.CreateJob(context.Background(), localiot.JobSpec{JobID: id, Targets: things, Document: json.RawMessage(doc)}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *jobEnv) execution(job, thing string) jobstate.Execution {
	e.t.Helper()
	x, err := e.srv.DescribeJobExecution(context.Background(), job, thing)
	if err != nil {
		e.t.Fatal(err)
	}
	return x
}

// awaitStatus waits (bounded, polling) for the execution to reach status.
func (e *jobEnv) awaitStatus(job, thing string, status jobstate.Status) jobstate.Execution {
	e.t.Helper()
	var x jobstate.Execution
	eventually(e.t, wait, func() error {
		x = e.execution(job, thing)
		if x.Status != status {
			return fmt.Errorf("%s on %s is %s, want %s (details %v)", job, thing, x.Status, status, x.StatusDetails)
		}
		return nil
	})
	return x
}

// startJobs makes a manager running h for things, started until the test ends or
// the returned stop is called (which cancels it without waiting for handlers).
func (e *jobEnv) startJobs(opts reconciler.JobOptions, h reconciler.JobHandler[Firmware]) (*reconciler.Manager, func()) {
	e.t.Helper()
	m, err := reconciler.NewManager(fastConfig(e.srv.Endpoints().Plain), reconciler.Options{Logger: testLogger(e.t), ShutdownTimeout: wait})
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := reconciler.RegisterJobs(m, opts, h); err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Start(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					e.t.Errorf("Start: %v", err)
				}
			case <-time.After(wait):
				e.t.Error("Start did not return after its ctx ended")
			}
		})
	}
	e.t.Cleanup(stop)
	return m, stop
}

func succeed(ctx context.Context, job reconciler.Job[Firmware]) (reconciler.JobResult, error) {
	return reconciler.JobResult{StatusDetails: map[string]string{"installed": job.Document.Version}}, nil
}

func TestJobQueuedWhileOfflineRunsOnConnect(t *testing.T) {
	e := newJobEnv(t)
	e.create("fw-1", `{"version":"1.2"}`, "dev-1")
	m, _ := e.startJobs(reconciler.JobOptions{Things: []string{"dev-1"}}, reconciler.JobHandlerFunc[Firmware](succeed))
	x := e.awaitStatus("fw-1", "dev-1", jobstate.Succeeded)
	if x.StatusDetails["installed"] != "1.2" {
		t.Errorf("details: %v", x.StatusDetails)
	}
	eventually(t, wait, func() error {
		if n := counterWith(t, m.Registry(), "shadowsync_jobs_finished_total", map[string]string{"status": "succeeded"}); n != 1 {
			return fmt.Errorf("succeeded metric %v", n)
		}
		return nil
	})
	if n := counterWith(t, m.Registry(), "shadowsync_jobs_started_total", nil); n != 1 {
		t.Errorf("started metric %v", n)
	}
	// A job created while the device runs is picked up on notify-next.
	e.create("fw-2", `{"version":"1.3"}`, "dev-1")
	e.awaitStatus("fw-2", "dev-1", jobstate.Succeeded)
}

func TestJobHandlerErrorFails(t *testing.T) {
	e := newJobEnv(t)
	e.startJobs(reconciler.JobOptions{Things: []string{"dev-1"}}, reconciler.JobHandlerFunc[Firmware](func(ctx context.Context, job reconciler.Job[Firmware]) (reconciler.JobResult, error) {
		if job.Document.Channel == "beta" {
			return reconciler.JobResult{}, reconciler.RejectJob(errors.New("beta firmware not accepted"))
		}
		return reconciler.JobResult{StatusDetails: map[string]string{"step": "flash"}}, errors.New("flash failed:\nbad block")
	}))
	e.create("fw-1", `{"version":"1.2"}`, "dev-1")
	x := e.awaitStatus("fw-1", "dev-1", jobstate.Failed)
	if x.StatusDetails["error"] != "flash failed: bad block" || x.StatusDetails["step"] != "flash" {
		t.Errorf("details: %v", x.StatusDetails)
	}
	e.create("fw-2", `{"version":"1.3","channel":"beta"}`, "dev-1")
	x = e.awaitStatus("fw-2", "dev-1", jobstate.Rejected)
	if x.StatusDetails["error"] != "beta firmware not accepted" {
		t.Errorf("details: %v", x.StatusDetails)
	}
}

func TestJobDocumentFailingSchemaIsRejected(t *testing.T) {
	e := newJobEnv(t)
	var calls atomic.Int32
	e.startJobs(reconciler.JobOptions{Things: []string{"dev-1"}}, reconciler.JobHandlerFunc[Firmware](func(ctx context.Context, job reconciler.Job[Firmware]) (reconciler.JobResult, error) {
		calls.Add(1)
		return reconciler.JobResult{}, nil
	}))
	e.create("fw-bad", `{"version":"1.2","channel":"nightly"}`, "dev-1")
	x := e.awaitStatus("fw-bad", "dev-1", jobstate.Rejected)
	if !strings.Contains(x.StatusDetails["error"], "/channel") {
		t.Errorf("the rejection does not name the field: %v", x.StatusDetails)
	}
	e.create("fw-good", `{"version":"1.2"}`, "dev-1")
	e.awaitStatus("fw-good", "dev-1", jobstate.Succeeded)
	if n := calls.Load(); n != 1 {
		t.Errorf("handler ran %d times, want once (not for the rejected document)", n)
	}
}

func TestJobResumedAfterRestart(t *testing.T) {
	e := newJobEnv(t)
	started := make(chan reconciler.Job[Firmware], 1)
	first := reconciler.JobHandlerFunc[Firmware](func(ctx context.Context, job reconciler.Job[Firmware]) (reconciler.JobResult, error) {
		if err := job.Progress(ctx, map[string]string{"step": "downloaded"}); err != nil {
			return reconciler.JobResult{}, err
		}
		started <- job
		<-ctx.Done() // killed mid-job: never finishes
		return reconciler.JobResult{}, context.Cause(ctx)
	})
	e.create("fw-1", `{"version":"2.0"}`, "dev-1")
	_, stop := e.startJobs(reconciler.JobOptions{Things: []string{"dev-1"}}, first)
	if j := recv(t, started, "first run started"); j.Resumed {
		t.Error("a fresh job is marked resumed")
	}
	stop()
	if x := e.execution("fw-1", "dev-1"); x.Status != jobstate.InProgress || x.StatusDetails["step"] != "downloaded" {
		t.Fatalf("after the kill: %s %v, want IN_PROGRESS with its progress", x.Status, x.StatusDetails)
	}
	resumed := make(chan reconciler.Job[Firmware], 1)
	e.startJobs(reconciler.JobOptions{Things: []string{"dev-1"}}, reconciler.JobHandlerFunc[Firmware](func(ctx context.Context, job reconciler.Job[Firmware]) (reconciler.JobResult, error) {
		resumed <- job
		return reconciler.JobResult{StatusDetails: map[string]string{"step": "done"}}, nil
	}))
	j := recv(t, resumed, "resumed run")
	if !j.Resumed || j.StatusDetails["step"] != "downloaded" || j.Document.Version != "2.0" {
		t.Errorf("resumed job: %+v", j)
	}
	e.awaitStatus("fw-1", "dev-1", jobstate.Succeeded)
}

func TestJobCanceledCancelsHandler(t *testing.T) {
	e := newJobEnv(t)
	started := make(chan struct{}, 1)
	causes := make(chan error, 1)
	e.startJobs(reconciler.JobOptions{Things: []string{"dev-1"}}, reconciler.JobHandlerFunc[Firmware](func(ctx context.Context, job reconciler.Job[Firmware]) (reconciler.JobResult, error) {
		started <- struct{}{}
		<-ctx.Done()
		causes <- context.Cause(ctx)
		return reconciler.JobResult{}, ctx.Err()
	}))
	e.create("fw-1", `{"version":"1.0"}`, "dev-1")
	recv(t, started, "handler started")
	e.awaitStatus("fw-1", "dev-1", jobstate.InProgress)
	if _, err := e.srv.CancelJob(context.Background(), "fw-1", localiot.CancelJobOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	if cause := recv(t, causes, "handler ctx cancelled"); !errors.Is(cause, reconciler.ErrJobEnded) {
		t.Errorf("cause %v, want ErrJobEnded", cause)
	}
	e.awaitStatus("fw-1", "dev-1", jobstate.Canceled)
}

func TestJobStepTimeout(t *testing.T) {
	e := newJobEnv(t)
	started := make(chan struct{}, 1)
	causes := make(chan error, 1)
	e.startJobs(reconciler.JobOptions{Things: []string{"dev-1"}, StepTimeout: time.Minute}, reconciler.JobHandlerFunc[Firmware](func(ctx context.Context, job reconciler.Job[Firmware]) (reconciler.JobResult, error) {
		started <- struct{}{}
		<-ctx.Done()
		causes <- context.Cause(ctx)
		return reconciler.JobResult{}, ctx.Err()
	}))
	e.create("fw-1", `{"version":"1.0"}`, "dev-1")
	recv(t, started, "handler started")
	if x := e.execution("fw-1", "dev-1"); x.StepDeadline.IsZero() {
		t.Fatalf("no step timer runs: %+v", x)
	}
	e.clock.Advance(2 * time.Minute)
	if cause := recv(t, causes, "handler ctx cancelled by the timeout"); !errors.Is(cause, reconciler.ErrJobEnded) {
		t.Errorf("cause %v, want ErrJobEnded", cause)
	}
	e.awaitStatus("fw-1", "dev-1", jobstate.TimedOut)
}

func TestJobExtendStepTimeout(t *testing.T) {
	e := newJobEnv(t)
	extended := make(chan struct{})
	release := make(chan struct{})
	e.startJobs(reconciler.JobOptions{Things: []string{"dev-1"}, StepTimeout: time.Minute}, reconciler.JobHandlerFunc[Firmware](func(ctx context.Context, job reconciler.Job[Firmware]) (reconciler.JobResult, error) {
		if err := job.ExtendStepTimeout(ctx, 10*time.Minute); err != nil {
			return reconciler.JobResult{}, err
		}
		close(extended)
		<-release
		return reconciler.JobResult{}, ctx.Err()
	}))
	e.create("fw-1", `{"version":"1.0"}`, "dev-1")
	recv(t, extended, "step timer extended")
	e.clock.Advance(2 * time.Minute) // past the first step timeout, within the second
	close(release)
	e.awaitStatus("fw-1", "dev-1", jobstate.Succeeded)
}

func TestJobsOfOneThingRunInOrder(t *testing.T) {
	e := newJobEnv(t)
	var mu sync.Mutex
	var order []string
	var running atomic.Int32
	gate := make(chan struct{})
	e.create("fw-1", `{"version":"1.0"}`, "dev-1")
	e.create("fw-2", `{"version":"2.0"}`, "dev-1")
	e.startJobs(reconciler.JobOptions{Things: []string{"dev-1"}}, reconciler.JobHandlerFunc[Firmware](func(ctx context.Context, job reconciler.Job[Firmware]) (reconciler.JobResult, error) {
		if running.Add(1) != 1 {
			t.Error("two jobs of one thing ran at once")
		}
		defer running.Add(-1)
		mu.Lock()
		order = append(order, job.ID)
		mu.Unlock()
		if job.ID == "fw-1" {
			<-gate
		}
		return reconciler.JobResult{}, nil
	}))
	e.awaitStatus("fw-1", "dev-1", jobstate.InProgress)
	if x := e.execution("fw-2", "dev-1"); x.Status != jobstate.Queued {
		t.Errorf("fw-2 is %s while fw-1 runs", x.Status)
	}
	close(gate)
	e.awaitStatus("fw-2", "dev-1", jobstate.Succeeded)
	e.awaitStatus("fw-1", "dev-1", jobstate.Succeeded)
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(order, []string{"fw-1", "fw-2"}) {
		t.Errorf("order %v", order)
	}
}

func TestJobVersionMismatchIsReReadNotFailed(t *testing.T) {
	e := newJobEnv(t)
	progressed := make(chan struct{})
	meddled := make(chan struct{})
	m, _ := e.startJobs(reconciler.JobOptions{Things: []string{"dev-1"}}, reconciler.JobHandlerFunc[Firmware](func(ctx context.Context, job reconciler.Job[Firmware]) (reconciler.JobResult, error) {
		if err := job.Progress(ctx, map[string]string{"step": "1"}); err != nil {
			return reconciler.JobResult{}, err
		}
		close(progressed)
		<-meddled
		if err := job.Progress(ctx, map[string]string{"step": "2"}); err != nil {
			return reconciler.JobResult{}, err
		}
		return reconciler.JobResult{StatusDetails: map[string]string{"step": "done"}}, nil
	}))
	e.create("fw-1", `{"version":"1.0"}`, "dev-1")
	recv(t, progressed, "first progress")
	// Another client updates the execution meanwhile: the handler's version is stale.
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	conn, err := transport.Dial(ctx, fastConfig(e.srv.Endpoints().Plain))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	other, _ := jobsclient.New(conn, jobsclient.Options{})
	defer other.Close(context.Background())
	th, _ := other.Thing("dev-1")
	before := e.execution("fw-1", "dev-1").VersionNumber
	if _, err := th.Update(ctx, "fw-1", jobstate.UpdateRequest{Status: jobstate.InProgress, StatusDetails: map[string]string{"note": "operator"}}); err != nil {
		t.Fatal(err)
	}
	if after := e.execution("fw-1", "dev-1").VersionNumber; after != before+1 {
		t.Fatalf("version %d -> %d", before, after)
	}
	close(meddled)
	x := e.awaitStatus("fw-1", "dev-1", jobstate.Succeeded)
	if x.StatusDetails["step"] != "done" {
		t.Errorf("details %v", x.StatusDetails)
	}
	// The stale update was rejected once (VersionMismatch), then written again.
	if n := counterWith(t, m.Registry(), "shadowsync_job_requests_total", map[string]string{"operation": "update", "outcome": "rejected"}); n != 1 {
		t.Errorf("%v rejected updates, want the one VersionMismatch", n)
	}
}

func TestJobsForManyThings(t *testing.T) {
	const n = 1000
	e := newJobEnv(t)
	things := make([]string, n)
	for i := range things {
		things[i] = fmt.Sprintf("dev-%04d", i)
	}
	// One job per thing: localiot recomputes the pending list of every target of a job
	// on each update of one of its executions, so one job for a thousand things
	// would measure that rather than the controller.
	for _, th := range things {
		e.create("fw-"+th, `{"version":"3.0"}`, th)
	}
	var ran atomic.Int32
	m, _ := e.startJobs(reconciler.JobOptions{Things: things}, reconciler.JobHandlerFunc[Firmware](func(ctx context.Context, job reconciler.Job[Firmware]) (reconciler.JobResult, error) {
		ran.Add(1)
		return reconciler.JobResult{}, nil
	}))
	start := time.Now()
	eventually(t, 2*wait, func() error {
		if got := counterWith(t, m.Registry(), "shadowsync_jobs_finished_total", map[string]string{"status": "succeeded"}); got != n {
			return fmt.Errorf("%v of %d succeeded", got, n)
		}
		return nil
	})
	t.Logf("%d jobs on %d things in %v", n, n, time.Since(start))
	for _, th := range things {
		if x := e.execution("fw-"+th, th); x.Status != jobstate.Succeeded {
			t.Errorf("%s: %s", th, x.Status)
		}
	}
	if ran.Load() != n {
		t.Errorf("handler ran %d times", ran.Load())
	}
}

// TestJobRetriedAfterStepTimeout: with a retry configuration, a step timeout ends the
// execution TIMED_OUT and the service queues a retry, which the handler runs as
// execution number 2.
func TestJobRetriedAfterStepTimeout(t *testing.T) {
	e := newJobEnv(t)
	runs := make(chan int64, 2)
	e.startJobs(reconciler.JobOptions{Things: []string{"dev-1"}, StepTimeout: time.Minute}, reconciler.JobHandlerFunc[Firmware](func(ctx context.Context, job reconciler.Job[Firmware]) (reconciler.JobResult, error) {
		runs <- job.ExecutionNumber
		if job.ExecutionNumber == 1 {
			<-ctx.Done() // hangs until the step timeout ends it
			return reconciler.JobResult{}, ctx.Err()
		}
		return succeed(ctx, job)
	}))
	_, err := e.srv.CreateJob(context.Background(), localiot.JobSpec{JobID: "fw-1", Targets: []string{"dev-1"}, Document: json.RawMessage(`{"version":"1.0"}`),
		RetryConfig: &jobstate.RetryConfig{CriteriaList: []jobstate.RetryCriteria{{FailureType: jobstate.RetryTimedOut, NumberOfRetries: 1}}}})
	if err != nil {
		t.Fatal(err)
	}
	if n := recv(t, runs, "first run"); n != 1 {
		t.Fatalf("first run has execution number %d, want 1", n)
	}
	e.clock.Advance(2 * time.Minute)
	if n := recv(t, runs, "the retry's run"); n != 2 {
		t.Fatalf("the retry runs as execution number %d, want 2", n)
	}
	x := e.awaitStatus("fw-1", "dev-1", jobstate.Succeeded)
	if x.ExecutionNumber != 2 || x.StatusDetails["installed"] != "1.0" {
		t.Errorf("final execution: %+v", x)
	}
	first, err := e.srv.DescribeJobExecutionNumber(context.Background(), "fw-1", "dev-1", 1)
	if err != nil || first.Status != jobstate.TimedOut {
		t.Errorf("execution number 1: %+v, %v; want TIMED_OUT", first, err)
	}
}
