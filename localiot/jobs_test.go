package localiot

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/shadowsync/shadowsync/jobstate"
)

// startJobsServer starts a server whose plain clients act as the thing named by their
// client ID, on a fake clock.
func startJobsServer(t *testing.T) (*Server, *fakeClock) {
	t.Helper()
	clock := newFakeClock()
	s := startServer(t, Options{Plain: &PlainListener{ThingFromClientID: true}, Clock: clock})
	return s, clock
}

// jobsDevice connects thing and subscribes to its notify and notify-next topics only:
// replies arrive without a subscription, as on AWS.
func jobsDevice(t *testing.T, s *Server, thing string) *client {
	t.Helper()
	c := mustConnect(t, s.Endpoints().Plain, thing)
	c.mustSubscribe(t, jobstate.NotifyTopic(thing), jobstate.NotifyNextTopic(thing))
	return c
}

func createJob(t *testing.T, s *Server, spec JobSpec) {
	t.Helper()
	if _, err := s.CreateJob(t.Context(), spec); err != nil {
		t.Fatalf("CreateJob %s: %v", spec.JobID, err)
	}
}

func TestJobsLifecycle(t *testing.T) {
	s, clock := startJobsServer(t)
	dev := jobsDevice(t, s, "dev1")
	const p = "$aws/things/dev1/jobs/"

	createJob(t, s, JobSpec{JobID: "job1", Targets: []string{"dev1"}, Document: json.RawMessage(`{"op":"reboot"}`)})
	dev.expectJSON(t, p+"notify", `{"timestamp":"T+0","jobs":{"QUEUED":[{"jobId":"job1","queuedAt":"T+0","lastUpdatedAt":"T+0","versionNumber":1,"executionNumber":1}]}}`)
	dev.expectJSON(t, p+"notify-next", `{"timestamp":"T+0","execution":{"jobId":"job1","thingName":"dev1","jobDocument":{"op":"reboot"},"status":"QUEUED","queuedAt":"T+0","lastUpdatedAt":"T+0","versionNumber":1,"executionNumber":1}}`)

	clock.Advance(time.Second)
	dev.publish(t, p+"get", `{"clientToken":"c1"}`)
	dev.expectJSON(t, p+"get/accepted", `{"inProgressJobs":[],"queuedJobs":[{"jobId":"job1","queuedAt":"T+0","lastUpdatedAt":"T+0","versionNumber":1,"executionNumber":1}],"timestamp":"T+1","clientToken":"c1"}`)

	clock.Advance(time.Second)
	dev.publish(t, p+"start-next", `{"statusDetails":{"step":"download"},"clientToken":"c2"}`)
	dev.expectJSON(t, p+"start-next/accepted", `{"execution":{"jobId":"job1","thingName":"dev1","jobDocument":{"op":"reboot"},"status":"IN_PROGRESS","statusDetails":{"step":"download"},"queuedAt":"T+0","startedAt":"T+2","lastUpdatedAt":"T+2","versionNumber":2,"executionNumber":1},"timestamp":"T+2","clientToken":"c2"}`)
	// The list changed (QUEUED to IN_PROGRESS); its first execution did not.
	dev.expectJSON(t, p+"notify", `{"timestamp":"T+2","jobs":{"IN_PROGRESS":[{"jobId":"job1","queuedAt":"T+0","startedAt":"T+2","lastUpdatedAt":"T+2","versionNumber":2,"executionNumber":1}]}}`)

	clock.Advance(time.Second)
	dev.publish(t, p+"job1/update", `{"status":"IN_PROGRESS","statusDetails":{"step":"install","progress":"50"},"expectedVersion":2,"includeJobExecutionState":true,"clientToken":"c3"}`)
	dev.expectJSON(t, p+"job1/update/accepted", `{"executionState":{"status":"IN_PROGRESS","statusDetails":{"step":"install","progress":"50"},"versionNumber":3},"timestamp":"T+3","clientToken":"c3"}`)
	// No notify: the pending list kept its executions and statuses.
	dev.expectNothingPending(t, "dev1")

	dev.publish(t, p+"job1/get", `{"clientToken":"c4"}`)
	dev.expectJSON(t, p+"job1/get/accepted", `{"execution":{"jobId":"job1","thingName":"dev1","jobDocument":{"op":"reboot"},"status":"IN_PROGRESS","statusDetails":{"step":"install","progress":"50"},"queuedAt":"T+0","startedAt":"T+2","lastUpdatedAt":"T+3","versionNumber":3,"executionNumber":1},"timestamp":"T+3","clientToken":"c4"}`)

	clock.Advance(time.Second)
	dev.publish(t, p+"job1/update", `{"status":"SUCCEEDED","expectedVersion":3,"includeJobDocument":true,"clientToken":"c5"}`)
	dev.expectJSON(t, p+"job1/update/accepted", `{"jobDocument":{"op":"reboot"},"timestamp":"T+4","clientToken":"c5"}`)
	dev.expectJSON(t, p+"notify", `{"timestamp":"T+4","jobs":{}}`)
	dev.expectJSON(t, p+"notify-next", `{"timestamp":"T+4"}`)

	job, err := s.DescribeJob(t.Context(), "job1")
	if err != nil {
		t.Fatal(err)
	}
	if job.Status != jobstate.JobCompleted || job.Executions[0].Status != jobstate.Succeeded || job.Executions[0].VersionNumber != 4 {
		t.Errorf("job after SUCCEEDED: status %s, execution %s v%d; want COMPLETED, SUCCEEDED v4", job.Status, job.Executions[0].Status, job.Executions[0].VersionNumber)
	}
	dev.expectNothingPending(t, "dev1")
}

func TestJobsQueueInCreationOrder(t *testing.T) {
	s, clock := startJobsServer(t)
	dev := jobsDevice(t, s, "dev1")
	const p = "$aws/things/dev1/jobs/"

	createJob(t, s, JobSpec{JobID: "job-a", Targets: []string{"dev1"}, Document: json.RawMessage(`{"n":1}`)})
	dev.expectJSON(t, p+"notify", `{"timestamp":"T+0","jobs":{"QUEUED":[{"jobId":"job-a","queuedAt":"T+0","lastUpdatedAt":"T+0","versionNumber":1,"executionNumber":1}]}}`)
	dev.expectJSON(t, p+"notify-next", `{"timestamp":"T+0","execution":{"jobId":"job-a","thingName":"dev1","jobDocument":{"n":1},"status":"QUEUED","queuedAt":"T+0","lastUpdatedAt":"T+0","versionNumber":1,"executionNumber":1}}`)
	// Queued in the same second: creation order decides. The front is unchanged, so
	// no notify-next.
	createJob(t, s, JobSpec{JobID: "job-b", Targets: []string{"dev1", "dev2"}, Document: json.RawMessage(`{"n":2}`)})
	dev.expectJSON(t, p+"notify", `{"timestamp":"T+0","jobs":{"QUEUED":[{"jobId":"job-a","queuedAt":"T+0","lastUpdatedAt":"T+0","versionNumber":1,"executionNumber":1},{"jobId":"job-b","queuedAt":"T+0","lastUpdatedAt":"T+0","versionNumber":1,"executionNumber":1}]}}`)
	dev.expectNothingPending(t, "dev1")

	clock.Advance(time.Second)
	dev.publish(t, p+"start-next", `{}`)
	dev.expectPrefix(t, p+"start-next/accepted", `{"execution":{"jobId":"job-a",`)
	dev.expectPrefix(t, p+"notify", `{"timestamp":`)
	dev.publish(t, p+"job-a/update", `{"status":"FAILED","statusDetails":{"reason":"disk full"}}`)
	dev.expectJSON(t, p+"job-a/update/accepted", `{"timestamp":"T+1"}`)
	dev.expectJSON(t, p+"notify", `{"timestamp":"T+1","jobs":{"QUEUED":[{"jobId":"job-b","queuedAt":"T+0","lastUpdatedAt":"T+0","versionNumber":1,"executionNumber":1}]}}`)
	dev.expectJSON(t, p+"notify-next", `{"timestamp":"T+1","execution":{"jobId":"job-b","thingName":"dev1","jobDocument":{"n":2},"status":"QUEUED","queuedAt":"T+0","lastUpdatedAt":"T+0","versionNumber":1,"executionNumber":1}}`)
	dev.publish(t, p+"start-next", `{"clientToken":"x"}`)
	dev.expectPrefix(t, p+"start-next/accepted", `{"execution":{"jobId":"job-b",`)

	execs, err := s.ListJobExecutionsForThing(t.Context(), "dev1")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range execs {
		got = append(got, e.JobID+":"+string(e.Status))
	}
	if want := []string{"job-b:IN_PROGRESS", "job-a:FAILED"}; !equalStrings(got, want) {
		t.Errorf("ListJobExecutionsForThing = %v, want %v", got, want)
	}
	if _, err := s.DescribeJobExecution(t.Context(), "job-b", "dev2"); err != nil {
		t.Errorf("dev2's execution of job-b: %v", err)
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestJobsRejections(t *testing.T) {
	s, _ := startJobsServer(t)
	dev := jobsDevice(t, s, "dev1")
	const p = "$aws/things/dev1/jobs/"
	createJob(t, s, JobSpec{JobID: "job1", Targets: []string{"dev1"}, Document: json.RawMessage(`{}`)})
	dev.expectPrefix(t, p+"notify", "{")
	dev.expectPrefix(t, p+"notify-next", "{")

	steps := []struct {
		topic, payload, wantTopic, want string
	}{
		{p + "job1/update", `{"status":"IN_PROGRESS","expectedVersion":7,"clientToken":"v"}`, p + "job1/update/rejected",
			`{"code":"VersionMismatch","message":"` + jobstate.MsgVersionMismatch + `","clientToken":"v","timestamp":"T+0","executionState":{"status":"QUEUED","versionNumber":1}}`},
		{p + "nope/update", `{"status":"IN_PROGRESS","clientToken":"n"}`, p + "nope/update/rejected",
			`{"code":"ResourceNotFound","message":"` + jobstate.MsgNotFound + `","clientToken":"n","timestamp":"T+0"}`},
		{p + "job1/get", `{"executionNumber":2}`, p + "job1/get/rejected",
			`{"code":"ResourceNotFound","message":"` + jobstate.MsgNotFound + `","timestamp":"T+0"}`},
		{p + "job1/update", `{"status":`, p + "job1/update/rejected",
			`{"code":"InvalidJson","message":"` + jobstate.MsgInvalidJSON + `","timestamp":"T+0"}`},
		{p + "job1/update", `{"status":"TIMED_OUT","clientToken":"s"}`, p + "job1/update/rejected",
			`{"code":"InvalidStateTransition","message":"` + jobstate.MsgInvalidStateTransition + `: QUEUED to TIMED_OUT","clientToken":"s","timestamp":"T+0","executionState":{"status":"QUEUED","versionNumber":1}}`},
		{p + "frobnicate", `{"clientToken":"f"}`, p + "frobnicate/rejected",
			`{"code":"InvalidTopic","message":"` + jobstate.MsgInvalidTopic + `","clientToken":"f","timestamp":"T+0"}`},
		{p + "job1/update", `{"status":"SUCCEEDED","expectedVersion":1}`, p + "job1/update/accepted", `{"timestamp":"T+0"}`},
		{p + "job1/get", `{"clientToken":"t"}`, p + "job1/get/rejected",
			`{"code":"TerminalStateReached","message":"` + jobstate.MsgTerminalStateReached + `","clientToken":"t","timestamp":"T+0"}`},
		{p + "job1/update", `{"status":"IN_PROGRESS","clientToken":"i"}`, p + "job1/update/rejected",
			`{"code":"InvalidStateTransition","message":"` + jobstate.MsgInvalidStateTransition + `: SUCCEEDED to IN_PROGRESS","clientToken":"i","timestamp":"T+0","executionState":{"status":"SUCCEEDED","versionNumber":2}}`},
	}
	for _, st := range steps {
		dev.publish(t, st.topic, st.payload)
		dev.expectJSON(t, st.wantTopic, st.want)
		if st.wantTopic == p+"job1/update/accepted" {
			dev.expectPrefix(t, p+"notify", "{")
			dev.expectPrefix(t, p+"notify-next", "{")
		}
	}
	dev.expectNothingPending(t, "dev1")
}

func TestJobsRepliesGoToTheRequesterOnly(t *testing.T) {
	s, _ := startJobsServer(t)
	a := mustConnect(t, s.Endpoints().Plain, "dev1@a")
	b := mustConnect(t, s.Endpoints().Plain, "dev1@b")
	b.mustSubscribe(t, "$aws/things/dev1/jobs/get/accepted")
	a.publish(t, "$aws/things/dev1/jobs/get", `{"clientToken":"from-a"}`)
	a.expectPrefix(t, "$aws/things/dev1/jobs/get/accepted", `{"inProgressJobs":[]`)
	// b subscribed to the reply topic yet gets only its own reply.
	b.publish(t, "$aws/things/dev1/jobs/get", `{"clientToken":"from-b"}`)
	b.expectJSON(t, "$aws/things/dev1/jobs/get/accepted", `{"inProgressJobs":[],"queuedJobs":[],"timestamp":"T+0","clientToken":"from-b"}`)
}

func TestJobsThingCannotUseAnotherThingsTopics(t *testing.T) {
	s, _ := startJobsServer(t)
	createJob(t, s, JobSpec{JobID: "secret", Targets: []string{"dev2"}, Document: json.RawMessage(`{"key":"x"}`)})
	dev := mustConnect(t, s.Endpoints().Plain, "dev1")
	for f, code := range dev.subscribe(t, 1, "$aws/things/dev2/jobs/notify", "$aws/things/dev2/jobs/get/accepted", "$aws/things/+/jobs/notify-next", "$aws/things/dev1/jobs/#") {
		if want := byte(0x80); f == "$aws/things/dev1/jobs/#" {
			want = 1
			if code != want {
				t.Errorf("subscribe %s: code %#x, want %#x", f, code, want)
			}
		} else if code != want {
			t.Errorf("subscribe %s: code %#x, want %#x", f, code, want)
		}
	}
	// Dropped by the policy: the service never sees them, so nothing comes back.
	dev.publish(t, "$aws/things/dev2/jobs/get", `{"clientToken":"steal"}`)
	dev.publish(t, "$aws/things/dev2/jobs/secret/get", `{"clientToken":"steal"}`)
	dev.publish(t, "$aws/things/dev2/jobs/start-next", `{"clientToken":"steal"}`)
	// Nobody may publish the service's own topics, its own thing's included.
	dev.publish(t, "$aws/things/dev1/jobs/notify", `{"timestamp":1,"jobs":{}}`)
	dev.publish(t, "$aws/things/dev1/jobs/get/accepted", `{}`)
	dev.expectNothingPending(t, "dev1")
	if e, err := s.DescribeJobExecution(t.Context(), "secret", "dev2"); err != nil || e.Status != jobstate.Queued {
		t.Errorf("dev2's execution: %v %v, want QUEUED", e.Status, err)
	}
}

func TestJobsCancel(t *testing.T) {
	s, _ := startJobsServer(t)
	dev := jobsDevice(t, s, "dev1")
	const p = "$aws/things/dev1/jobs/"
	ctx := t.Context()

	// Cancel of a QUEUED execution.
	createJob(t, s, JobSpec{JobID: "queued", Targets: []string{"dev1"}, Document: json.RawMessage(`{}`)})
	dev.expectPrefix(t, p+"notify", "{")
	dev.expectPrefix(t, p+"notify-next", "{")
	if _, err := s.CancelJob(ctx, "queued", CancelJobOptions{Comment: "not needed"}); err != nil {
		t.Fatal(err)
	}
	dev.expectJSON(t, p+"notify", `{"timestamp":"T+0","jobs":{}}`)
	dev.expectJSON(t, p+"notify-next", `{"timestamp":"T+0"}`)
	if e, _ := s.DescribeJobExecution(ctx, "queued", "dev1"); e.Status != jobstate.Canceled || e.VersionNumber != 2 {
		t.Errorf("canceled QUEUED execution: %s v%d, want CANCELED v2", e.Status, e.VersionNumber)
	}

	// An IN_PROGRESS execution survives a cancel without force, not one with force.
	createJob(t, s, JobSpec{JobID: "running", Targets: []string{"dev1"}, Document: json.RawMessage(`{}`)})
	dev.expectPrefix(t, p+"notify", "{")
	dev.expectPrefix(t, p+"notify-next", `{"timestamp":`)
	dev.publish(t, p+"start-next", `{}`)
	dev.expectPrefix(t, p+"start-next/accepted", `{"execution":{"jobId":"running"`)
	dev.expectPrefix(t, p+"notify", "{")
	job, err := s.CancelJob(ctx, "running", CancelJobOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if job.Status != jobstate.JobCanceled || job.Executions[0].Status != jobstate.InProgress {
		t.Errorf("after cancel without force: job %s, execution %s; want CANCELED, IN_PROGRESS", job.Status, job.Executions[0].Status)
	}
	dev.expectNothingPending(t, "dev1")
	if _, err := s.CancelJob(ctx, "running", CancelJobOptions{Force: true, ReasonCode: "stuck"}); err != nil {
		t.Fatal(err)
	}
	dev.expectJSON(t, p+"notify", `{"timestamp":"T+0","jobs":{}}`)
	dev.expectJSON(t, p+"notify-next", `{"timestamp":"T+0"}`)
	dev.publish(t, p+"running/update", `{"status":"SUCCEEDED"}`)
	dev.expectJSON(t, p+"running/update/rejected", `{"code":"InvalidStateTransition","message":"`+jobstate.MsgInvalidStateTransition+`: CANCELED to SUCCEEDED","timestamp":"T+0","executionState":{"status":"CANCELED","versionNumber":3}}`)

	// Deleting: a finished job without force; an unknown one is not found.
	if err := s.DeleteJob(ctx, "queued", false); err != nil {
		t.Errorf("DeleteJob of a CANCELED job: %v", err)
	}
	if err := s.DeleteJob(ctx, "queued", false); !errors.Is(err, ErrJobNotFound) {
		t.Errorf("DeleteJob again: %v, want ErrJobNotFound", err)
	}
	createJob(t, s, JobSpec{JobID: "live", Targets: []string{"dev1"}, Document: json.RawMessage(`{}`)})
	dev.expectPrefix(t, p+"notify", "{")
	dev.expectPrefix(t, p+"notify-next", "{")
	if err := s.DeleteJob(ctx, "live", false); !errors.Is(err, ErrJobState) {
		t.Errorf("DeleteJob of an IN_PROGRESS job without force: %v, want ErrJobState", err)
	}
	if err := s.DeleteJob(ctx, "live", true); err != nil {
		t.Fatal(err)
	}
	dev.expectJSON(t, p+"notify", `{"timestamp":"T+0","jobs":{}}`)
	dev.expectJSON(t, p+"notify-next", `{"timestamp":"T+0"}`)
	dev.expectNothingPending(t, "dev1")
}

func TestJobsTimeouts(t *testing.T) {
	s, clock := startJobsServer(t)
	dev := jobsDevice(t, s, "dev1")
	const p = "$aws/things/dev1/jobs/"
	ctx := t.Context()

	// A step timeout.
	createJob(t, s, JobSpec{JobID: "step", Targets: []string{"dev1"}, Document: json.RawMessage(`{}`)})
	dev.expectPrefix(t, p+"notify", "{")
	dev.expectPrefix(t, p+"notify-next", "{")
	dev.publish(t, p+"start-next", `{"stepTimeoutInMinutes":5}`)
	dev.expectJSON(t, p+"start-next/accepted", `{"execution":{"jobId":"step","thingName":"dev1","jobDocument":{},"status":"IN_PROGRESS","queuedAt":"T+0","startedAt":"T+0","lastUpdatedAt":"T+0","versionNumber":2,"executionNumber":1,"approximateSecondsBeforeTimedOut":300},"timestamp":"T+0"}`)
	dev.expectPrefix(t, p+"notify", "{")
	clock.Advance(4*time.Minute + 59*time.Second)
	dev.expectNothingPending(t, "dev1")
	clock.Advance(time.Second)
	dev.expectJSON(t, p+"notify", `{"timestamp":"T+300","jobs":{}}`)
	dev.expectJSON(t, p+"notify-next", `{"timestamp":"T+300"}`)
	if e, _ := s.DescribeJobExecution(ctx, "step", "dev1"); e.Status != jobstate.TimedOut || e.VersionNumber != 3 {
		t.Errorf("after the step timeout: %s v%d, want TIMED_OUT v3", e.Status, e.VersionNumber)
	}

	// -1 cancels the step timer; the job's in-progress timeout still applies.
	createJob(t, s, JobSpec{JobID: "long", Targets: []string{"dev1"}, Document: json.RawMessage(`{}`), InProgressTimeout: 30 * time.Minute})
	dev.expectPrefix(t, p+"notify", "{")
	dev.expectPrefix(t, p+"notify-next", "{")
	dev.publish(t, p+"long/update", `{"status":"IN_PROGRESS","stepTimeoutInMinutes":1}`)
	dev.expectPrefix(t, p+"long/update/accepted", "{")
	dev.expectPrefix(t, p+"notify", "{")
	dev.publish(t, p+"long/update", `{"status":"IN_PROGRESS","stepTimeoutInMinutes":-1}`)
	dev.expectPrefix(t, p+"long/update/accepted", "{")
	clock.Advance(29 * time.Minute)
	dev.expectNothingPending(t, "dev1")
	if e, _ := s.DescribeJobExecution(ctx, "long", "dev1"); e.Status != jobstate.InProgress {
		t.Fatalf("with the step timer canceled: %s, want IN_PROGRESS", e.Status)
	}
	dev.publish(t, p+"long/update", `{"status":"SOMETHING"}`)
	dev.expectPrefix(t, p+"long/update/rejected", `{"code":"InvalidRequest"`)
	dev.publish(t, p+"long/update", `{"status":"IN_PROGRESS","stepTimeoutInMinutes":0}`)
	dev.expectPrefix(t, p+"long/update/rejected", `{"code":"InvalidRequest"`)
	clock.Advance(time.Minute)
	dev.expectJSON(t, p+"notify", `{"timestamp":"T+2100","jobs":{}}`)
	dev.expectJSON(t, p+"notify-next", `{"timestamp":"T+2100"}`)
	job, _ := s.DescribeJob(ctx, "long")
	if job.Status != jobstate.JobCompleted || job.Executions[0].Status != jobstate.TimedOut {
		t.Errorf("after the in-progress timeout: job %s, execution %s; want COMPLETED, TIMED_OUT", job.Status, job.Executions[0].Status)
	}
}

func TestJobsSurviveRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shadows.db")
	clock := newFakeClock()
	run := func() (*Server, *BoltStore, func()) {
		store, err := OpenBoltStore(path)
		if err != nil {
			t.Fatal(err)
		}
		s, err := New(Options{Plain: &PlainListener{ThingFromClientID: true}, Clock: clock, Store: store})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- s.Start(ctx) }()
		select {
		case <-s.Ready():
		case err := <-done:
			t.Fatal(err)
		case <-time.After(wait):
			t.Fatal("server not ready")
		}
		return s, store, func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Start: %v", err)
				}
			case <-time.After(wait):
				t.Fatal("server did not stop")
			}
			store.Close()
		}
	}
	const p = "$aws/things/dev1/jobs/"

	s, _, stop := run()
	createJob(t, s, JobSpec{JobID: "first", Targets: []string{"dev1"}, Document: json.RawMessage(`{"v":1}`)})
	createJob(t, s, JobSpec{JobID: "second", Targets: []string{"dev1"}, Document: json.RawMessage(`{"v":2}`)})
	dev := mustConnect(t, s.Endpoints().Plain, "dev1")
	dev.publish(t, p+"start-next", `{"stepTimeoutInMinutes":10}`)
	dev.expectPrefix(t, p+"start-next/accepted", `{"execution":{"jobId":"first"`)
	dev.Disconnect(0)
	stop()

	clock.Advance(time.Minute)
	s, _, stop = run()
	defer stop()
	dev = jobsDevice(t, s, "dev1")
	dev.publish(t, p+"get", `{}`)
	dev.expectJSON(t, p+"get/accepted", `{"inProgressJobs":[{"jobId":"first","queuedAt":"T+0","startedAt":"T+0","lastUpdatedAt":"T+0","versionNumber":2,"executionNumber":1}],"queuedJobs":[{"jobId":"second","queuedAt":"T+0","lastUpdatedAt":"T+0","versionNumber":1,"executionNumber":1}],"timestamp":"T+60"}`)
	// The step timer was armed again from the store.
	clock.Advance(9 * time.Minute)
	dev.expectJSON(t, p+"notify", `{"timestamp":"T+600","jobs":{"QUEUED":[{"jobId":"second","queuedAt":"T+0","lastUpdatedAt":"T+0","versionNumber":1,"executionNumber":1}]}}`)
	dev.expectJSON(t, p+"notify-next", `{"timestamp":"T+600","execution":{"jobId":"second","thingName":"dev1","jobDocument":{"v":2},"status":"QUEUED","queuedAt":"T+0","lastUpdatedAt":"T+0","versionNumber":1,"executionNumber":1}}`)
	// A new job keeps to the creation order after the restart.
	createJob(t, s, JobSpec{JobID: "third", Targets: []string{"dev1"}, Document: json.RawMessage(`{}`)})
	dev.expectPrefix(t, p+"notify", `{"timestamp":`+ts(600*time.Second)+`,"jobs":{"QUEUED":[{"jobId":"second"`)
	if _, err := s.CreateJob(t.Context(), JobSpec{JobID: "first", Targets: []string{"dev1"}, Document: json.RawMessage(`{}`)}); !errors.Is(err, ErrJobExists) {
		t.Errorf("CreateJob with a stored job's ID: %v, want ErrJobExists", err)
	}
}

func TestCreateJobValidates(t *testing.T) {
	s, _ := startJobsServer(t)
	doc := json.RawMessage(`{}`)
	for name, spec := range map[string]JobSpec{
		"bad id":        {JobID: "a b", Targets: []string{"t"}, Document: doc},
		"no targets":    {JobID: "j", Document: doc},
		"bad target":    {JobID: "j", Targets: []string{"a/b"}, Document: doc},
		"twice":         {JobID: "j", Targets: []string{"t", "t"}, Document: doc},
		"array doc":     {JobID: "j", Targets: []string{"t"}, Document: json.RawMessage(`[1]`)},
		"big doc":       {JobID: "j", Targets: []string{"t"}, Document: json.RawMessage(`{"x":"` + stringOf('a', 33000) + `"}`)},
		"short timeout": {JobID: "j", Targets: []string{"t"}, Document: doc, InProgressTimeout: 30 * time.Second},
		"long timeout":  {JobID: "j", Targets: []string{"t"}, Document: doc, InProgressTimeout: 10081 * time.Minute},
	} {
		if _, err := s.CreateJob(t.Context(), spec); !errors.Is(err, ErrInvalidJob) {
			t.Errorf("%s: %v, want ErrInvalidJob", name, err)
		}
	}
}

func stringOf(c byte, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = c
	}
	return string(b)
}
