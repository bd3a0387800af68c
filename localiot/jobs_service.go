package localiot

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/shadowsync/shadowsync/jobstate"
)

// Clock is the time source of the Jobs service: the timestamps it hands out and the
// step and in-progress timeouts that end executions TIMED_OUT. Tests give the server
// a fake one (Options.Clock) to run timeouts without waiting.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// AfterFunc calls f in its own goroutine once d has passed, unless stop is
	// called first; stop reports whether it prevented the call.
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

// systemClock is the Clock of the system's time.
type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) AfterFunc(d time.Duration, f func()) func() bool {
	return time.AfterFunc(d, f).Stop
}

// jobsService is the AWS IoT Jobs service's device side: it answers the requests
// things publish under $aws/things/{thing}/jobs/ by the rules of package jobstate,
// publishes notify and notify-next when a thing's pending executions change, ends
// executions whose step or in-progress timer runs out, and keeps every job in a
// JobStore, saving each change before it is answered or announced. Like the shadow
// service it knows nothing of the broker: the attachment (jobs_attach.go) feeds it
// requests and carries its messages. One mutex serialises everything, so the messages
// about a thing leave in the order of its changes. It is safe for concurrent use.
type jobsService struct {
	store JobStore
	clock Clock
	log   *slog.Logger

	mu      sync.Mutex
	publish func(topic string, payload []byte) // events, through the broker; set by attach
	jobs    map[string]*Job
	// index maps a job ID and a thing to the index of the thing's execution in the
	// job's Executions, which keeps its targets' order for the job's life.
	index   map[string]map[string]int
	seq     uint64      // the last Job.Seq handed out
	timerAt time.Time   // when the armed timer fires; zero for none
	stop    func() bool // stops the armed timer
	closed  bool
}

// newJobsService loads the jobs in store and arms the timer of the earliest timeout.
func newJobsService(store JobStore, clock Clock, log *slog.Logger) (*jobsService, error) {
	if clock == nil {
		clock = systemClock{}
	}
	s := &jobsService{store: store, clock: clock, log: log, jobs: map[string]*Job{}, index: map[string]map[string]int{}}
	jobs, err := store.LoadJobs()
	if err != nil {
		return nil, err
	}
	for i := range jobs {
		j := jobs[i]
		s.jobs[j.JobID] = &j
		s.index[j.JobID] = indexOf(&j)
		s.seq = max(s.seq, j.Seq)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked() // timeouts that passed while the server was down
	return s, nil
}

// close stops the timer; no timeout fires after it returns.
func (s *jobsService) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.stop != nil {
		s.stop()
		s.stop, s.timerAt = nil, time.Time{}
	}
}

// message is one MQTT message the service sends.
type message struct {
	topic   string
	payload []byte
}

// handle answers one request published on a topic ParseTopic returned t for, calling
// reply with the answer for the requester, then publishing the events the request
// caused, all while the service is locked.
func (s *jobsService) handle(t jobstate.Topic, payload []byte, reply func(topic string, payload []byte)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now()
	out := jobstate.Handle(s.view(t.Thing), t, payload, now)
	var events []message
	if e := out.Changed; e != nil {
		old := s.jobs[e.JobID]
		j := old.clone()
		i := s.executionLocked(&j, e.ThingName)
		j.Executions[i] = *e
		j.retry(i, now)
		j.refreshStatus(now)
		var err error
		if events, err = s.replaceLocked(old, &j, now, e.ThingName); err != nil {
			s.log.Error("jobs store failed", "job", e.JobID, "thing", e.ThingName, "error", err)
			rej := &jobstate.ErrorResponse{Code: jobstate.CodeInternalError, Message: jobstate.MsgInternal, ClientToken: jobstate.TokenOf(payload), Timestamp: now.Unix()}
			out.Topic, out.Reply, out.Rejected = t.Name+"/"+string(jobstate.KindRejected), rej, rej
		}
	}
	if out.Rejected != nil {
		s.log.Debug("jobs request rejected", "topic", t.Name, "code", out.Rejected.Code, "message", out.Rejected.Message)
	}
	if topicWithinLimits(out.Topic) {
		reply(out.Topic, mustJSON(out.Reply))
	}
	s.sendLocked(events)
}

// view returns what the rules see of thing: its executions and their jobs.
func (s *jobsService) view(thing string) jobstate.ThingView {
	v := jobstate.ThingView{Thing: thing, Jobs: map[string]jobstate.JobInfo{}}
	for _, j := range s.jobs {
		if i := s.executionLocked(j, thing); i >= 0 {
			v.Executions = append(v.Executions, j.Executions[i])
			v.Jobs[j.JobID] = jobstate.JobInfo{Document: j.Document, InProgressTimeout: j.InProgressTimeout}
		}
	}
	return v
}

// executionLocked returns the index of thing's execution in j (a job of the service,
// or a copy of one), or -1.
func (s *jobsService) executionLocked(j *Job, thing string) int {
	if i, ok := s.index[j.JobID][thing]; ok {
		return i
	}
	return -1
}

// indexOf returns the index of each target's execution in j.Executions.
func indexOf(j *Job) map[string]int {
	idx := make(map[string]int, len(j.Executions))
	for i, e := range j.Executions {
		idx[e.ThingName] = i
	}
	return idx
}

// replaceLocked stores next in old's place (next nil deletes old; old nil adds next),
// rearms the timer, and returns the notify and notify-next messages for every thing
// whose pending executions the change altered. things are the things whose executions
// the change touched; none means every target of old and next. Naming them keeps an
// update of one execution of a job aimed at many things from recomputing the pending
// list of every target.
func (s *jobsService) replaceLocked(old, next *Job, now time.Time, things ...string) ([]message, error) {
	if len(things) == 0 {
		things = sortedThings(old, next)
	} else {
		things = slices.Sorted(slices.Values(things))
	}
	before := make(map[string]jobstate.ThingView, len(things))
	for _, t := range things {
		before[t] = s.view(t)
	}
	var err error
	if next == nil {
		err = s.store.DeleteJob(old.JobID)
	} else {
		err = s.store.SaveJob(*next)
	}
	if err != nil {
		return nil, err
	}
	switch {
	case next == nil:
		delete(s.jobs, old.JobID)
		delete(s.index, old.JobID)
	case old == nil:
		s.jobs[next.JobID] = next
		s.index[next.JobID] = indexOf(next)
	default:
		s.jobs[next.JobID] = next
	}
	var events []message
	for _, t := range things {
		after := s.view(t)
		notify, next := jobstate.Changes(before[t].Executions, after.Executions)
		if notify {
			events = append(events, message{jobstate.NotifyTopic(t), mustJSON(jobstate.List(after.Executions, now))})
		}
		if next {
			events = append(events, message{jobstate.NotifyNextTopic(t), mustJSON(jobstate.Next(after.Executions, after.Jobs, now))})
		}
	}
	s.rearmLocked()
	return events, nil
}

// sendLocked publishes events through the broker, once the service is attached.
func (s *jobsService) sendLocked(events []message) {
	if s.publish == nil {
		return
	}
	for _, m := range events {
		s.publish(m.topic, m.payload)
	}
}

// expireLocked ends TIMED_OUT every IN_PROGRESS execution whose deadline has passed,
// publishes what that changes, and arms the timer for the next deadline.
func (s *jobsService) expireLocked() {
	now := s.clock.Now()
	for _, id := range slices.Sorted(maps.Keys(s.jobs)) {
		old := s.jobs[id]
		var things []string
		for _, e := range old.Executions {
			if _, ok := jobstate.Expire(e, now); ok {
				things = append(things, e.ThingName)
			}
		}
		if len(things) == 0 {
			continue
		}
		j := old.clone()
		for i, e := range j.Executions {
			if e2, ok := jobstate.Expire(e, now); ok {
				j.Executions[i] = e2
				j.retry(i, now)
			}
		}
		j.refreshStatus(now)
		events, err := s.replaceLocked(old, &j, now, things...)
		if err != nil {
			s.log.Error("jobs store failed: timed-out executions not saved", "job", id, "error", err)
			continue
		}
		s.sendLocked(events)
	}
	s.rearmLocked()
}

// rearmLocked arms the timer for the earliest deadline of any execution.
func (s *jobsService) rearmLocked() {
	var next time.Time
	for _, j := range s.jobs {
		for _, e := range j.Executions {
			if dl := e.Deadline(); !dl.IsZero() && (next.IsZero() || dl.Before(next)) {
				next = dl
			}
		}
	}
	if s.closed || next.Equal(s.timerAt) {
		return
	}
	if s.stop != nil {
		s.stop()
		s.stop = nil
	}
	s.timerAt = next
	if next.IsZero() {
		return
	}
	s.stop = s.clock.AfterFunc(max(next.Sub(s.clock.Now()), 0), s.fire)
}

// fire runs when the timer expires.
func (s *jobsService) fire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.stop, s.timerAt = nil, time.Time{}
	s.expireLocked()
}

// retry queues a new execution in place of j's execution i when that has just ended
// and the job's retry configuration allows another attempt (jobstate.RetryConfig.Allows):
// the ended execution moves to EarlierExecutions and the new one, QUEUED at now with
// the next execution number, joins the end of the thing's queue. A job that is no
// longer IN_PROGRESS (canceled) retries nothing.
func (j *Job) retry(i int, now time.Time) {
	if j.RetryConfig == nil || j.Status != jobstate.JobInProgress {
		return
	}
	e := j.Executions[i]
	var earlier []jobstate.Status
	for _, x := range j.EarlierExecutions {
		if x.ThingName == e.ThingName {
			earlier = append(earlier, x.Status)
		}
	}
	if !j.RetryConfig.Allows(e.Status, earlier) {
		return
	}
	j.EarlierExecutions = append(j.EarlierExecutions, e)
	j.Executions[i] = jobstate.Retry(e, j.Seq, now)
}

// refreshStatus marks an IN_PROGRESS job COMPLETED once every execution is terminal.
func (j *Job) refreshStatus(now time.Time) {
	j.LastUpdatedAt = now
	if j.Status != jobstate.JobInProgress {
		return
	}
	for _, e := range j.Executions {
		if !e.Status.Terminal() {
			return
		}
	}
	j.Status, j.CompletedAt = jobstate.JobCompleted, now
}

// mustJSON encodes one of the jobstate message types, which cannot fail.
func mustJSON(v any) []byte {
	data, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("localiot: jobs message does not encode: %v", err))
	}
	return data
}
