package reconciler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/shadowsync/shadowsync/jobsclient"
	"github.com/shadowsync/shadowsync/jobstate"
	"github.com/shadowsync/shadowsync/schemas"
)

// Errors a job handler's ctx ends with; read them with context.Cause(ctx).
var (
	// ErrJobEnded is the cause of a job handler's ctx when the service ended the
	// execution while it ran: it was canceled (with force), timed out, or removed.
	// The framework writes no status for it; whatever the handler returns is ignored.
	ErrJobEnded = errors.New("reconciler: the job execution was ended by the service (canceled, timed out or removed)")
	// ErrManagerStopped is the cause of a job handler's ctx when the manager shuts
	// down. A handler that then returns an error leaves the execution IN_PROGRESS,
	// and it is resumed when the device starts again; one that returns success is
	// reported as usual.
	ErrManagerStopped = errors.New("reconciler: the manager is shutting down; the job is resumed on the next start")
)

// JobOptions configure one job controller.
type JobOptions struct {
	// Name identifies the controller in logs and metrics. Empty means the name of the
	// document type D.
	Name string
	// Things are the things whose jobs the controller runs, at least one unless Fleet
	// is set. A thing belongs to one job controller of a manager.
	Things []string
	// Fleet, when set, makes the controller run the jobs of every thing whose name
	// has a prefix, discovered from their notify-next events, instead of a list:
	// Things must then be empty.
	Fleet *JobFleet
	// Schema controls the JSON Schema derived from D that a job document must pass
	// before the handler sees it; a document that fails it is REJECTED, the fields
	// named in statusDetails. D that is not a struct gets no schema.
	Schema schemas.Options
	// StepTimeout, when positive, is sent with StartNext as stepTimeoutInMinutes
	// (rounded up to whole minutes): the service ends the execution TIMED_OUT unless
	// the handler finishes, or extends it with Job.ExtendStepTimeout, before then.
	StepTimeout time.Duration
}

// JobFleet makes a job controller run the jobs of a whole fleet: every thing whose
// name starts with Prefix, discovered from its notify-next events (MQTT cannot list
// things), and possibly shared by several processes that join the same Group. A
// thing is picked up at its first notify-next, so a job queued while no process was
// listening is found only at the thing's next event (see docs/jobs.md). A manager has
// at most one fleet job controller; things a listed job controller handles are left
// to it. The connection's policy must allow the wildcard jobs filters.
type JobFleet struct {
	// Prefix selects the things: only names starting with it are handled. Empty
	// means every thing.
	Prefix string
	// Group is the shared subscription group ($share/Group/...) the processes of a
	// fleet join: each event goes to one of them. Every process then starts an
	// execution only by moving it from QUEUED to IN_PROGRESS fenced by its version,
	// so that exactly one of them runs it, and leaves alone an execution already
	// IN_PROGRESS that it is not running itself (another process may be). Empty
	// means this process handles every event, and resumes IN_PROGRESS executions as
	// a listed thing's worker does.
	Group string
}

// Job is one job execution handed to a JobHandler: its identity, its document
// decoded into D (it has passed D's schema), and methods to report progress. The
// methods are safe for concurrent use; they fail with ErrJobEnded once the service
// has ended the execution.
type Job[D any] struct {
	// ID is the job's ID; Thing the thing the execution runs on.
	ID    string
	Thing string
	// ExecutionNumber identifies the execution of the job on the thing.
	ExecutionNumber int64
	// Document is the job document decoded into D; RawDocument is its JSON text.
	Document    D
	RawDocument json.RawMessage
	// StatusDetails are the execution's details when it was handed over: on a resumed
	// execution, the progress the handler last reported.
	StatusDetails map[string]string
	// Resumed is true when the execution was already IN_PROGRESS when the controller
	// found it: a previous run of the device (or of this handler) was interrupted, and
	// StatusDetails say how far it got. Handlers must be idempotent.
	Resumed bool

	run *jobRun
}

// Progress reports progress: the execution stays IN_PROGRESS and its statusDetails
// become details (replacing the previous ones whole), fenced by the execution's
// version. A concurrent change by someone else is re-read and the report retried.
func (j Job[D]) Progress(ctx context.Context, details map[string]string) error {
	return j.run.update(ctx, jobstate.InProgress, details, nil)
}

// ExtendStepTimeout restarts the execution's step timer with d (rounded up to whole
// minutes, 1 to 10080): the service ends the execution TIMED_OUT unless it finishes,
// or is extended again, within d. The status details are left as they are.
func (j Job[D]) ExtendStepTimeout(ctx context.Context, d time.Duration) error {
	minutes := int64((d + time.Minute - 1) / time.Minute)
	return j.run.update(ctx, jobstate.InProgress, nil, &minutes)
}

// Version returns the execution's version as the controller last saw it.
func (j Job[D]) Version() int64 {
	j.run.mu.Lock()
	defer j.run.mu.Unlock()
	return j.run.version
}

// JobResult is what a JobHandler returns besides its error.
type JobResult struct {
	// StatusDetails are written with the terminal status (SUCCEEDED, or with the error
	// under "error" for FAILED and REJECTED). Nil leaves the details the handler last
	// reported, on success.
	StatusDetails map[string]string
}

// JobHandler carries out the jobs of a thing, with documents of type D.
//
// HandleJob is called with each execution of the things of its controller, one at a
// time per thing, in the order the service queues them: the next one once the
// framework has moved it to IN_PROGRESS, or one already IN_PROGRESS after a crash or
// restart (Job.Resumed). It may be called again for an execution it was given before
// (the device stopped mid-job, or its outcome could not be written), so it must be
// idempotent. Its ctx ends when the service ends the execution (cause ErrJobEnded:
// canceled, timed out) or the manager stops (cause ErrManagerStopped).
//
// Returning nil makes the execution SUCCEEDED; an error makes it FAILED with the
// error's text in statusDetails["error"], or REJECTED when the error was wrapped with
// RejectJob. A panic is recovered and counts as an error. Nothing is written when
// the service ended the execution, nor when the handler fails after the manager
// began to stop (the execution is resumed on the next start).
type JobHandler[D any] interface {
	HandleJob(ctx context.Context, job Job[D]) (JobResult, error)
}

// JobHandlerFunc adapts a function to JobHandler.
type JobHandlerFunc[D any] func(ctx context.Context, job Job[D]) (JobResult, error)

// HandleJob calls f(ctx, job).
func (f JobHandlerFunc[D]) HandleJob(ctx context.Context, job Job[D]) (JobResult, error) {
	return f(ctx, job)
}

// rejectError marks a handler's error that makes the execution REJECTED.
type rejectError struct{ err error }

func (e rejectError) Error() string { return e.err.Error() }
func (e rejectError) Unwrap() error { return e.err }

// RejectJob wraps err so that the execution becomes REJECTED rather than FAILED: the
// device refuses the job (a document it cannot act on) rather than failing at it. It
// returns nil for a nil err.
func RejectJob(err error) error {
	if err == nil {
		return nil
	}
	return rejectError{err}
}

// JobController runs the jobs of a list of things, or of a fleet, with one
// JobHandler for document type D. Create it with RegisterJobs.
type JobController[D any] struct {
	m      *Manager
	opts   JobOptions
	h      JobHandler[D]
	schema *schemas.Schema // nil when D is not a struct
	log    *slog.Logger
	jobs   *jobsclient.Client // the manager's; a fleet controller's own (WildcardsReplies)

	mu        sync.Mutex
	workers   []*jobWorker          // every worker: listed, then discovered
	byThing   map[string]*jobWorker // a fleet's discovered workers
	listed    map[string]bool       // things of listed job controllers, left to them
	stopped   bool                  // shutdown began: no more goroutines
	stopWatch func()                // ends the fleet watch
	// sem bounds the things looking for work or writing an outcome at once
	// (Options.ReadConcurrency), so that a thousand things starting together do not
	// put a thousand requests in flight on one connection.
	sem  chan struct{}
	ctx  context.Context // set by start; cancelled by shutdown
	stop context.CancelCauseFunc
	wg   sync.WaitGroup
}

// jobWorker runs the jobs of one thing, one at a time.
type jobWorker struct {
	thing *jobsclient.Thing
	kick  chan struct{} // buffered 1: "look for work"

	mu      sync.Mutex
	pending bool        // a fleet worker was woken since it last looked
	active  bool        // a fleet worker's goroutine runs
	running *jobRun     // the execution its handler runs, or nil
	owed    *owedStatus // an outcome not written yet
	backoff time.Duration
}

// owedStatus is a terminal status a handler earned but the controller could not
// write (offline, a timeout): written before anything else, instead of running the
// handler again.
type owedStatus struct {
	jobID   string
	execNo  int64
	status  jobstate.Status
	details map[string]string
	result  string
}

// RegisterJobs adds a job controller for document type D to m: h carries out the
// jobs of opts.Things. It must be called before m.Start.
func RegisterJobs[D any](m *Manager, opts JobOptions, h JobHandler[D]) (*JobController[D], error) {
	if h == nil {
		return nil, errors.New("reconciler: RegisterJobs: nil JobHandler")
	}
	t := reflect.TypeFor[D]()
	if opts.Name == "" {
		opts.Name = t.Name()
	}
	switch f := opts.Fleet; {
	case f == nil && len(opts.Things) == 0:
		return nil, fmt.Errorf("reconciler: RegisterJobs %s: no things", opts.Name)
	case f != nil && len(opts.Things) > 0:
		return nil, fmt.Errorf("reconciler: RegisterJobs %s: Fleet and Things are exclusive", opts.Name)
	case f != nil && strings.ContainsAny(f.Group, "/+#"):
		return nil, fmt.Errorf("reconciler: RegisterJobs %s: group %q may not contain '/', '+' or '#'", opts.Name, f.Group)
	}
	if opts.StepTimeout < 0 || opts.StepTimeout > 10080*time.Minute {
		return nil, fmt.Errorf("reconciler: RegisterJobs %s: StepTimeout must be 0 or up to 7 days", opts.Name)
	}
	c := &JobController[D]{m: m, opts: opts, h: h, log: m.log.With("jobs", opts.Name), sem: make(chan struct{}, m.opts.ReadConcurrency), jobs: m.jobs}
	for k := t; ; k = k.Elem() {
		if k.Kind() == reflect.Struct {
			s, err := schemas.For[D](opts.Schema)
			if err != nil {
				return nil, fmt.Errorf("reconciler: RegisterJobs %s: %w", opts.Name, err)
			}
			c.schema = s
		}
		if k.Kind() != reflect.Pointer {
			break
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.started {
		return nil, ErrStarted
	}
	if opts.Fleet != nil {
		if m.jobFleet {
			return nil, fmt.Errorf("reconciler: RegisterJobs %s: the manager already has a fleet job controller", opts.Name)
		}
		// A client of its own whose requests subscribe to reply topics only: a
		// filter covering the fleet's events would hand every event to every
		// process of the group, not to one of them.
		jo := m.opts.Jobs
		jo.Wildcards = jobsclient.WildcardsReplies
		jo.Logger = m.log
		user := jo.Observe
		jo.Observe = func(op jobstate.Op, outcome string, took time.Duration) {
			m.metrics.observeJobRequest(op, outcome, took)
			if user != nil {
				user(op, outcome, took)
			}
		}
		jc, err := jobsclient.New(m.conn, jo)
		if err != nil {
			return nil, fmt.Errorf("reconciler: RegisterJobs %s: %w", opts.Name, err)
		}
		c.jobs, c.byThing = jc, map[string]*jobWorker{}
		m.jobFleet = true
	}
	seen := map[string]bool{}
	for _, name := range opts.Things {
		th, err := m.jobs.Thing(name)
		if err != nil {
			return nil, fmt.Errorf("reconciler: RegisterJobs %s: %w", opts.Name, err)
		}
		if seen[name] || m.jobThings[name] {
			return nil, fmt.Errorf("reconciler: RegisterJobs %s: thing %q already has a job controller", opts.Name, name)
		}
		seen[name] = true
		c.workers = append(c.workers, &jobWorker{thing: th, kick: make(chan struct{}, 1)})
	}
	if m.jobThings == nil {
		m.jobThings = map[string]bool{}
	}
	maps.Copy(m.jobThings, seen)
	m.controllers = append(m.controllers, c)
	return c, nil
}

func (c *JobController[D]) name() string { return c.opts.Name }

// connAdded does nothing: job controllers use the primary connection only.
func (c *JobController[D]) connAdded(context.Context, *poolConn) error { return nil }

// start watches each thing's notify-next (a fleet's: every thing's) and starts the
// workers. The workers look for work once the connection is online (the manager's
// resync); a fleet's look when their thing is discovered.
func (c *JobController[D]) start(ctx context.Context) error {
	c.ctx, c.stop = context.WithCancelCause(ctx)
	if f := c.opts.Fleet; f != nil {
		c.m.mu.Lock()
		c.listed = maps.Clone(c.m.jobThings)
		c.m.mu.Unlock()
		stop, err := c.jobs.WatchFleet(ctx, jobsclient.FleetWatch{Prefix: f.Prefix, Group: f.Group, OnNotifyNext: c.onFleetNext})
		if err != nil {
			return err
		}
		c.stopWatch = stop
		c.log.Info("fleet job controller started", "prefix", f.Prefix, "group", f.Group)
		return nil
	}
	for _, w := range c.workers {
		if _, err := w.thing.OnNotifyNext(ctx, func(ctx context.Context, n *jobstate.NextNotification) { c.onNext(ctx, w, n) }); err != nil {
			return err
		}
	}
	for _, w := range c.workers {
		c.wg.Go(func() { c.work(w) })
	}
	return nil
}

// resync makes every worker look for work, and check that the execution it runs
// still runs: the level-triggered answer to a reconnect, whatever happened while the
// device was offline.
func (c *JobController[D]) resync(ctx context.Context, why string, all bool, conns []bool) {
	if conns != nil && !conns[0] {
		return // job controllers use the primary connection only
	}
	c.mu.Lock()
	workers := slices.Clone(c.workers)
	c.mu.Unlock()
	for _, w := range workers {
		c.wake(w)
		if r := w.current(); r != nil {
			c.spawn(func() { c.verify(w, r) })
		}
	}
}

// onFleetNext handles a notify-next event of a fleet thing: the first event of a
// thing makes its worker, as a listed thing has, and every event wakes it.
func (c *JobController[D]) onFleetNext(ctx context.Context, t *jobsclient.Thing, n *jobstate.NextNotification) {
	name := t.Name()
	if c.listed[name] {
		return // a listed job controller of this manager runs its jobs
	}
	c.mu.Lock()
	w := c.byThing[name]
	if w == nil {
		w = &jobWorker{thing: t, kick: make(chan struct{}, 1)}
		c.byThing[name] = w
		c.workers = append(c.workers, w)
	}
	c.mu.Unlock()
	c.onNext(ctx, w, n)
}

// spawn runs f on a goroutine the shutdown waits for, unless the shutdown has begun;
// it reports whether f runs.
func (c *JobController[D]) spawn(f func()) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return false
	}
	c.wg.Go(f)
	return true
}

// wake makes w look for work. A listed thing's worker has a goroutine of its own,
// which is poked; a fleet thing's worker gets a goroutine only while it has work to
// look for, so that a fleet of many idle things costs no goroutines.
func (c *JobController[D]) wake(w *jobWorker) {
	if c.opts.Fleet == nil {
		w.poke()
		return
	}
	w.mu.Lock()
	w.pending = true
	if w.active {
		w.mu.Unlock()
		return
	}
	w.active = true
	w.mu.Unlock()
	if !c.spawn(func() { c.drain(w) }) {
		w.mu.Lock()
		w.active = false
		w.mu.Unlock()
	}
}

// drain is a fleet worker's goroutine: it looks for work until nobody woke the
// worker since it last looked.
func (c *JobController[D]) drain(w *jobWorker) {
	for {
		w.mu.Lock()
		if !w.pending || c.ctx.Err() != nil {
			w.active = false
			w.mu.Unlock()
			return
		}
		w.pending = false
		w.mu.Unlock()
		c.lookForWork(w)
	}
}

// shutdown ends the handlers' ctx with ErrManagerStopped and waits (within ctx) for
// the workers to return.
func (c *JobController[D]) shutdown(ctx context.Context) {
	if c.stop == nil {
		return
	}
	c.mu.Lock()
	c.stopped = true
	c.mu.Unlock()
	c.stop(ErrManagerStopped)
	if c.stopWatch != nil {
		c.stopWatch()
	}
	done := make(chan struct{})
	go func() { c.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		c.log.Warn("shutdown: job handlers still running when the shutdown timeout passed")
	}
	if c.jobs != c.m.jobs {
		if err := c.jobs.Close(ctx); err != nil {
			c.log.Warn("closing the fleet's jobs client", "error", err)
		}
	}
}

func (c *JobController[D]) awaitRereads(ctx context.Context) {}

// poke asks the worker to look for work.
func (w *jobWorker) poke() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

func (w *jobWorker) current() *jobRun {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.running
}

// onNext handles a notify-next event: the thing's first pending execution changed.
// The worker looks for work; if it runs an execution that is no longer first, that
// one may have ended, and is checked.
func (c *JobController[D]) onNext(_ context.Context, w *jobWorker, n *jobstate.NextNotification) {
	c.wake(w)
	r := w.current()
	if r == nil {
		return
	}
	if n.Execution == nil || n.Execution.JobID != r.jobID || n.Execution.ExecutionNumber != r.execNo {
		c.verify(w, r)
	}
}

// verify describes the execution r runs and ends the handler's ctx if the service
// has ended it.
func (c *JobController[D]) verify(w *jobWorker, r *jobRun) {
	ctx, cancel := context.WithCancel(r.ctx)
	defer cancel()
	d, err := w.thing.Describe(ctx, r.jobID, jobstate.DescribeRequest{ExecutionNumber: &r.execNo, IncludeJobDocument: new(false)})
	switch {
	case ended(err), err == nil && (d.Execution == nil || d.Execution.Status.Terminal()):
		r.end()
	case err != nil:
		c.log.Debug("checking a running job failed; checked again on the next event or reconnect", "thing", r.thing(), "job", r.jobID, "error", err)
	}
}

// ended reports whether err is a rejection saying the execution is over.
func ended(err error) bool {
	var rej *jobstate.ErrorResponse
	if !errors.As(err, &rej) {
		return false
	}
	switch rej.Code {
	case jobstate.CodeTerminalStateReached, jobstate.CodeResourceNotFound:
		return true
	case jobstate.CodeInvalidStateTransition:
		return rej.ExecutionState == nil || rej.ExecutionState.Status.Terminal()
	}
	return false
}

// work is a listed thing's worker: on each poke it looks for work.
func (c *JobController[D]) work(w *jobWorker) {
	for {
		select {
		case <-w.kick:
		case <-c.ctx.Done():
			return
		}
		c.lookForWork(w)
	}
}

// lookForWork runs the thing's executions until none is pending, retrying with
// backoff when a request fails.
func (c *JobController[D]) lookForWork(w *jobWorker) {
	for c.ctx.Err() == nil {
		more, err := c.next(w)
		if err != nil {
			if c.ctx.Err() == nil {
				c.retryLater(w, err)
			}
			return
		}
		w.mu.Lock()
		w.backoff = 0
		w.mu.Unlock()
		if !more {
			return
		}
	}
}

// retryLater pokes the worker again after a backoff, unless it failed for being
// offline: the reconnect pokes it.
func (c *JobController[D]) retryLater(w *jobWorker, err error) {
	if errors.Is(err, jobsclient.ErrOffline) || errors.Is(err, jobsclient.ErrReplyLost) {
		c.log.Debug("jobs: offline; looking again once online", "thing", w.thing.Name(), "error", err)
		return
	}
	w.mu.Lock()
	w.backoff = min(max(2*w.backoff, 100*time.Millisecond), 30*time.Second)
	d := w.backoff
	w.mu.Unlock()
	c.log.Warn("jobs: looking for work failed; retrying", "thing", w.thing.Name(), "in", d, "error", err)
	t := time.AfterFunc(d, func() { c.wake(w) })
	context.AfterFunc(c.ctx, func() { t.Stop() })
}

// next runs the thing's next execution, if any: one already IN_PROGRESS first (an
// interrupted run: resumed), else the first QUEUED one, started with StartNext. It
// reports whether it found one.
func (c *JobController[D]) next(w *jobWorker) (bool, error) {
	ctx := c.ctx
	ex, resumed, found, err := c.pick(ctx, w)
	if ex == nil || err != nil {
		return found, err
	}
	return true, c.run(w, ex, resumed)
}

// acquire takes a place among the things making requests at once.
func (c *JobController[D]) acquire(ctx context.Context) (func(), error) {
	select {
	case c.sem <- struct{}{}:
		return func() { <-c.sem }, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// pick finds the execution to run next, and reports whether there was work.
func (c *JobController[D]) pick(ctx context.Context, w *jobWorker) (_ *jobstate.ExecutionData, resumed, found bool, _ error) {
	release, err := c.acquire(ctx)
	if err != nil {
		return nil, false, false, err
	}
	defer release()
	pend, err := w.thing.GetPending(ctx)
	if err != nil {
		return nil, false, false, err
	}
	var ex *jobstate.ExecutionData
	shared := c.opts.Fleet != nil && c.opts.Fleet.Group != ""
	switch {
	case len(pend.InProgressJobs) > 0:
		s := pend.InProgressJobs[0]
		if done, err := c.payOwed(w, s); done || err != nil {
			return nil, false, true, err
		}
		if shared {
			// Another process of the group may be running it: its outcome, or its
			// timeout, brings the next notify-next.
			return nil, false, false, nil
		}
		d, err := w.thing.Describe(ctx, s.JobID, jobstate.DescribeRequest{ExecutionNumber: &s.ExecutionNumber})
		if ended(err) {
			return nil, false, true, nil // ended meanwhile: look again
		}
		if err != nil {
			return nil, false, false, err
		}
		ex, resumed = d.Execution, true
	case len(pend.QueuedJobs) > 0 && shared:
		return c.claim(ctx, w, pend.QueuedJobs[0])
	case len(pend.QueuedJobs) > 0:
		req := jobstate.StartNextRequest{StepTimeoutInMinutes: c.stepMinutes()}
		st, err := w.thing.StartNext(ctx, req)
		if err != nil {
			return nil, false, false, err
		}
		ex = st.Execution
	}
	return ex, resumed, ex != nil, nil
}

// stepMinutes is JobOptions.StepTimeout in whole minutes, rounded up; nil for none.
func (c *JobController[D]) stepMinutes() *int64 {
	if c.opts.StepTimeout <= 0 {
		return nil
	}
	return new(int64((c.opts.StepTimeout + time.Minute - 1) / time.Minute))
}

// claim starts the queued execution s for a process of a shared fleet: it moves it
// to IN_PROGRESS fenced by the version GetPending listed. StartNext cannot do it,
// since it returns an execution another process has just started as if it were
// this one's; of several processes updating from one version, exactly one succeeds.
// Losing the race is not an error: there is no work for this process.
func (c *JobController[D]) claim(ctx context.Context, w *jobWorker, s jobstate.ExecutionSummary) (_ *jobstate.ExecutionData, resumed, found bool, _ error) {
	acc, err := w.thing.Update(ctx, s.JobID, jobstate.UpdateRequest{
		Status: jobstate.InProgress, ExpectedVersion: &s.VersionNumber, ExecutionNumber: &s.ExecutionNumber,
		StepTimeoutInMinutes: c.stepMinutes(), IncludeJobExecutionState: true, IncludeJobDocument: true,
	})
	var rej *jobstate.ErrorResponse
	switch {
	case errors.As(err, &rej) && (rej.Code == jobstate.CodeVersionMismatch || ended(err)):
		c.log.Debug("jobs: another process started the execution, or it ended", "thing", w.thing.Name(), "job", s.JobID, "code", rej.Code)
		return nil, false, false, nil
	case err != nil:
		return nil, false, false, err
	case acc.ExecutionState == nil:
		return nil, false, false, fmt.Errorf("starting %s of %s: the reply has no execution state", s.JobID, w.thing.Name())
	}
	st := acc.ExecutionState
	return &jobstate.ExecutionData{
		JobID: s.JobID, ThingName: w.thing.Name(), JobDocument: acc.JobDocument,
		Status: st.Status, StatusDetails: st.StatusDetails, QueuedAt: s.QueuedAt,
		VersionNumber: st.VersionNumber, ExecutionNumber: s.ExecutionNumber,
	}, false, true, nil
}

// payOwed writes the outcome the handler of execution s already earned, if any,
// and reports whether it did.
func (c *JobController[D]) payOwed(w *jobWorker, s jobstate.ExecutionSummary) (bool, error) {
	w.mu.Lock()
	o := w.owed
	w.mu.Unlock()
	if o == nil || o.jobID != s.JobID || o.execNo != s.ExecutionNumber {
		return false, nil
	}
	r := &jobRun{c: c.log, w: w, jobID: s.JobID, execNo: s.ExecutionNumber, version: s.VersionNumber, ctx: c.ctx, cancel: func(error) {}}
	err := r.update(c.ctx, o.status, o.details, nil)
	if err != nil && !errors.Is(err, ErrJobEnded) {
		return false, err
	}
	w.mu.Lock()
	w.owed = nil
	w.mu.Unlock()
	result := o.result
	if errors.Is(err, ErrJobEnded) {
		result = jobEnded
	}
	c.m.metrics.jobsFinished.WithLabelValues(c.opts.Name, result).Inc()
	return true, nil
}

// run hands one IN_PROGRESS execution to the handler and writes its outcome. Its
// error is a failure to write that outcome, which is then owed.
func (c *JobController[D]) run(w *jobWorker, ex *jobstate.ExecutionData, resumed bool) error {
	log := c.log.With("thing", ex.ThingName, "job", ex.JobID)
	c.m.metrics.jobsStarted.WithLabelValues(c.opts.Name).Inc()
	hctx, cancel := context.WithCancelCause(c.ctx)
	defer cancel(nil)
	r := &jobRun{c: log, w: w, jobID: ex.JobID, execNo: ex.ExecutionNumber, version: ex.VersionNumber, ctx: hctx, cancel: cancel}
	finish := func(status jobstate.Status, details map[string]string, result string) error {
		// The outcome is written even when the manager is stopping.
		ctx := context.WithoutCancel(c.ctx)
		release, _ := c.acquire(ctx)
		err := r.update(ctx, status, details, nil)
		release()
		switch {
		case errors.Is(err, ErrJobEnded):
			result = jobEnded
		case err != nil:
			log.Warn("jobs: writing the outcome failed; written when the device next looks for work", "status", status, "error", err)
			w.mu.Lock()
			w.owed = &owedStatus{jobID: r.jobID, execNo: r.execNo, status: status, details: details, result: result}
			w.mu.Unlock()
			c.m.metrics.jobsFinished.WithLabelValues(c.opts.Name, jobUnreported).Inc()
			return err
		}
		c.m.metrics.jobsFinished.WithLabelValues(c.opts.Name, result).Inc()
		log.Info("job finished", "status", status, "result", result)
		return nil
	}

	doc, err := c.decode(ex.JobDocument)
	if err != nil {
		log.Warn("job document rejected", "error", err)
		return finish(jobstate.Rejected, map[string]string{"error": detailValue("job document " + err.Error())}, jobRejected)
	}
	job := Job[D]{
		ID: ex.JobID, Thing: ex.ThingName, ExecutionNumber: ex.ExecutionNumber,
		Document: doc, RawDocument: ex.JobDocument, StatusDetails: maps.Clone(ex.StatusDetails),
		Resumed: resumed, run: r,
	}
	w.mu.Lock()
	w.running = r
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		w.running = nil
		w.mu.Unlock()
	}()
	log.Info("job started", "resumed", resumed, "version", ex.VersionNumber)
	start := time.Now()
	res, herr := c.call(hctx, job)
	c.m.metrics.jobDuration.WithLabelValues(c.opts.Name).Observe(time.Since(start).Seconds())

	switch cause := context.Cause(hctx); {
	case errors.Is(cause, ErrJobEnded):
		log.Info("job ended by the service while its handler ran", "handler_error", herr)
		c.m.metrics.jobsFinished.WithLabelValues(c.opts.Name, jobEnded).Inc()
		return nil
	case herr != nil && c.ctx.Err() != nil:
		log.Info("job interrupted by the shutdown; resumed on the next start", "handler_error", herr)
		c.m.metrics.jobsFinished.WithLabelValues(c.opts.Name, jobInterrupted).Inc()
		return nil
	case herr != nil:
		details := maps.Clone(res.StatusDetails)
		if details == nil {
			details = map[string]string{}
		}
		details["error"] = detailValue(herr.Error())
		var rej rejectError
		if errors.As(herr, &rej) {
			return finish(jobstate.Rejected, details, jobRejected)
		}
		return finish(jobstate.Failed, details, jobFailed)
	}
	return finish(jobstate.Succeeded, res.StatusDetails, jobSucceeded)
}

// call runs the handler, turning a panic into an error.
func (c *JobController[D]) call(ctx context.Context, job Job[D]) (res JobResult, err error) {
	defer func() {
		if p := recover(); p != nil {
			c.log.Error("job handler panicked", "thing", job.Thing, "job", job.ID, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			res, err = JobResult{}, fmt.Errorf("job handler panicked: %v", p)
		}
	}()
	return c.h.HandleJob(ctx, job)
}

// decode checks a job document against D's schema and decodes it.
func (c *JobController[D]) decode(raw json.RawMessage) (D, error) {
	var d D
	if len(raw) == 0 {
		raw = json.RawMessage(`{}`)
	}
	if c.schema != nil {
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return d, err
		}
		if err := c.schema.Validate(v); err != nil {
			return d, err
		}
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		return d, err
	}
	return d, nil
}

// detailValue makes s a valid statusDetails value: no control or format characters,
// at most 1024 characters, not empty.
func detailValue(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.Is(unicode.C, r) {
			return ' '
		}
		return r
	}, s)
	if utf8.RuneCountInString(s) > 1024 {
		s = string([]rune(s)[:1021]) + "..."
	}
	if strings.TrimSpace(s) == "" {
		s = "unknown error"
	}
	return s
}

// jobRun is the state of one execution a handler runs: the version its updates
// are fenced with.
type jobRun struct {
	c      *slog.Logger
	w      *jobWorker
	jobID  string
	execNo int64
	ctx    context.Context // the handler's
	cancel context.CancelCauseFunc

	mu      sync.Mutex
	version int64
}

func (r *jobRun) thing() string { return r.w.thing.Name() }

// end ends the handler's ctx: the service ended the execution.
func (r *jobRun) end() { r.cancel(ErrJobEnded) }

// maxVersionRetries bounds how often one update re-reads the execution after a
// VersionMismatch before giving up.
const maxVersionRetries = 8

// update writes status (and details and a step timeout, when given) fenced by the
// execution's version. A VersionMismatch re-reads the execution and tries again; an
// execution the service ended ends the handler's ctx and returns ErrJobEnded.
func (r *jobRun) update(ctx context.Context, status jobstate.Status, details map[string]string, stepMinutes *int64) error {
	th := r.w.thing
	for range maxVersionRetries {
		r.mu.Lock()
		v := r.version
		r.mu.Unlock()
		acc, err := th.Update(ctx, r.jobID, jobstate.UpdateRequest{
			Status: status, StatusDetails: details, ExpectedVersion: &v, ExecutionNumber: &r.execNo,
			StepTimeoutInMinutes: stepMinutes, IncludeJobExecutionState: true,
		})
		if err == nil {
			if acc.ExecutionState != nil {
				r.mu.Lock()
				r.version = acc.ExecutionState.VersionNumber
				r.mu.Unlock()
			}
			return nil
		}
		var rej *jobstate.ErrorResponse
		switch {
		case ended(err):
			r.end()
			return fmt.Errorf("%w: %w", ErrJobEnded, err)
		case errors.As(err, &rej) && rej.Code == jobstate.CodeVersionMismatch:
			// Someone else changed the execution: read it again and go on from there.
			d, derr := th.Describe(ctx, r.jobID, jobstate.DescribeRequest{ExecutionNumber: &r.execNo, IncludeJobDocument: new(false)})
			if ended(derr) || derr == nil && (d.Execution == nil || d.Execution.Status.Terminal()) {
				r.end()
				return fmt.Errorf("%w: %w", ErrJobEnded, err)
			}
			if derr != nil {
				return derr
			}
			r.c.Info("job execution changed by someone else; continuing from its current version", "job", r.jobID, "had", v, "now", d.Execution.VersionNumber)
			r.mu.Lock()
			r.version = d.Execution.VersionNumber
			r.mu.Unlock()
			continue
		}
		return err
	}
	return fmt.Errorf("update %s of %s: the execution kept changing under %d re-reads", r.jobID, r.thing(), maxVersionRetries)
}
