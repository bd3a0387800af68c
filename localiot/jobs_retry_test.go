package localiot

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	"github.com/aws/aws-sdk-go-v2/service/iot/types"

	"github.com/shadowsync/shadowsync/jobstate"
)

func retryConfig(cs ...jobstate.RetryCriteria) *jobstate.RetryConfig {
	return &jobstate.RetryConfig{CriteriaList: cs}
}

// TestJobsRetryAfterStepTimeout: a step timeout ends the execution TIMED_OUT, and the
// job's TIMED_OUT criterion queues execution number 2 at once, announced as a new
// execution; the device runs it to SUCCEEDED and the job completes.
func TestJobsRetryAfterStepTimeout(t *testing.T) {
	s, clock := startJobsServer(t)
	dev := jobsDevice(t, s, "dev1")
	const p = "$aws/things/dev1/jobs/"
	ctx := t.Context()

	createJob(t, s, JobSpec{JobID: "fw", Targets: []string{"dev1"}, Document: json.RawMessage(`{"v":2}`),
		RetryConfig: retryConfig(jobstate.RetryCriteria{FailureType: jobstate.RetryTimedOut, NumberOfRetries: 1})})
	dev.expectPrefix(t, p+"notify", "{")
	dev.expectPrefix(t, p+"notify-next", "{")
	dev.publish(t, p+"start-next", `{"stepTimeoutInMinutes":5}`)
	dev.expectPrefix(t, p+"start-next/accepted", `{"execution":{"jobId":"fw"`)
	dev.expectPrefix(t, p+"notify", "{")

	clock.Advance(5 * time.Minute)
	dev.expectJSON(t, p+"notify", `{"timestamp":"T+300","jobs":{"QUEUED":[{"jobId":"fw","queuedAt":"T+300","lastUpdatedAt":"T+300","versionNumber":1,"executionNumber":2}]}}`)
	dev.expectJSON(t, p+"notify-next", `{"timestamp":"T+300","execution":{"jobId":"fw","thingName":"dev1","jobDocument":{"v":2},"status":"QUEUED","queuedAt":"T+300","lastUpdatedAt":"T+300","versionNumber":1,"executionNumber":2}}`)

	if e, err := s.DescribeJobExecution(ctx, "fw", "dev1"); err != nil || e.ExecutionNumber != 2 || e.Status != jobstate.Queued || e.VersionNumber != 1 {
		t.Errorf("latest execution after the time-out: %+v, %v; want number 2 QUEUED v1", e, err)
	}
	if e, err := s.DescribeJobExecutionNumber(ctx, "fw", "dev1", 1); err != nil || e.Status != jobstate.TimedOut || e.VersionNumber != 3 {
		t.Errorf("execution number 1: %+v, %v; want TIMED_OUT v3", e, err)
	}
	if _, err := s.DescribeJobExecutionNumber(ctx, "fw", "dev1", 3); !errors.Is(err, ErrJobNotFound) {
		t.Errorf("execution number 3: %v, want ErrJobNotFound", err)
	}
	if job, _ := s.DescribeJob(ctx, "fw"); job.Status != jobstate.JobInProgress {
		t.Errorf("job while the retry is queued: %s, want IN_PROGRESS", job.Status)
	}

	// The device works the retry: an update naming execution number 1 no longer finds
	// it; number 2 does.
	dev.publish(t, p+"fw/update", `{"status":"IN_PROGRESS","executionNumber":1,"clientToken":"old"}`)
	dev.expectPrefix(t, p+"fw/update/rejected", `{"code":"ResourceNotFound"`)
	dev.publish(t, p+"start-next", `{"clientToken":"s2"}`)
	dev.expectJSON(t, p+"start-next/accepted", `{"execution":{"jobId":"fw","thingName":"dev1","jobDocument":{"v":2},"status":"IN_PROGRESS","queuedAt":"T+300","startedAt":"T+300","lastUpdatedAt":"T+300","versionNumber":2,"executionNumber":2},"timestamp":"T+300","clientToken":"s2"}`)
	dev.expectPrefix(t, p+"notify", "{")
	dev.publish(t, p+"fw/update", `{"status":"SUCCEEDED","executionNumber":2,"expectedVersion":2}`)
	dev.expectPrefix(t, p+"fw/update/accepted", "{")
	dev.expectJSON(t, p+"notify", `{"timestamp":"T+300","jobs":{}}`)
	dev.expectJSON(t, p+"notify-next", `{"timestamp":"T+300"}`)

	job, _ := s.DescribeJob(ctx, "fw")
	if job.Status != jobstate.JobCompleted || job.Executions[0].Status != jobstate.Succeeded || job.Executions[0].ExecutionNumber != 2 ||
		len(job.EarlierExecutions) != 1 || job.EarlierExecutions[0].Status != jobstate.TimedOut {
		t.Errorf("job after the retry succeeded: %+v", job)
	}
	dev.expectNothingPending(t, "dev1")
}

// TestJobsRetryAfterFailed: with FAILED: 2 a device's FAILED is retried twice, as
// executions 2 and 3, and the third failure is final; a REJECTED is never retried.
func TestJobsRetryAfterFailed(t *testing.T) {
	s, _ := startJobsServer(t)
	dev := jobsDevice(t, s, "dev1")
	const p = "$aws/things/dev1/jobs/"
	ctx := t.Context()

	createJob(t, s, JobSpec{JobID: "j", Targets: []string{"dev1"}, Document: json.RawMessage(`{}`),
		RetryConfig: retryConfig(jobstate.RetryCriteria{FailureType: jobstate.RetryFailed, NumberOfRetries: 2})})
	dev.expectPrefix(t, p+"notify", "{")
	dev.expectPrefix(t, p+"notify-next", "{")
	for n := 1; n <= 3; n++ {
		dev.publish(t, p+"j/update", `{"status":"FAILED","statusDetails":{"why":"disk"},"expectedVersion":1}`)
		dev.expectPrefix(t, p+"j/update/accepted", "{")
		if n < 3 {
			// The list still has one QUEUED execution of j: its execution number changed,
			// so notify-next is sent; notify too, as it shows the new execution.
			next := `{"jobId":"j","queuedAt":"T+0","lastUpdatedAt":"T+0","versionNumber":1,"executionNumber":` + strconv.Itoa(n+1) + `}`
			dev.expectJSON(t, p+"notify", `{"timestamp":"T+0","jobs":{"QUEUED":[`+next+`]}}`)
			dev.expectPrefix(t, p+"notify-next", `{"timestamp":`)
			continue
		}
		dev.expectJSON(t, p+"notify", `{"timestamp":"T+0","jobs":{}}`)
		dev.expectJSON(t, p+"notify-next", `{"timestamp":"T+0"}`)
	}
	job, _ := s.DescribeJob(ctx, "j")
	if job.Status != jobstate.JobCompleted || job.Executions[0].ExecutionNumber != 3 || job.Executions[0].Status != jobstate.Failed || len(job.EarlierExecutions) != 2 {
		t.Errorf("job after three failures: %+v", job)
	}
	for n := int64(1); n <= 3; n++ {
		if e, err := s.DescribeJobExecutionNumber(ctx, "j", "dev1", n); err != nil || e.Status != jobstate.Failed || e.StatusDetails["why"] != "disk" {
			t.Errorf("execution %d: %+v, %v; want FAILED with its details", n, e, err)
		}
	}

	createJob(t, s, JobSpec{JobID: "r", Targets: []string{"dev1"}, Document: json.RawMessage(`{}`),
		RetryConfig: retryConfig(jobstate.RetryCriteria{FailureType: jobstate.RetryAll, NumberOfRetries: 10})})
	dev.expectPrefix(t, p+"notify", "{")
	dev.expectPrefix(t, p+"notify-next", "{")
	dev.publish(t, p+"r/update", `{"status":"REJECTED"}`)
	dev.expectPrefix(t, p+"r/update/accepted", "{")
	dev.expectJSON(t, p+"notify", `{"timestamp":"T+0","jobs":{}}`)
	dev.expectJSON(t, p+"notify-next", `{"timestamp":"T+0"}`)
	if job, _ := s.DescribeJob(ctx, "r"); job.Status != jobstate.JobCompleted || len(job.EarlierExecutions) != 0 {
		t.Errorf("job after REJECTED: %+v", job)
	}
}

// TestJobsRetryExhausted: a FAILED criterion does not cover a time-out, a job without
// a retry configuration retries nothing, and a canceled job's late failure is final.
func TestJobsRetryExhausted(t *testing.T) {
	s, clock := startJobsServer(t)
	dev := jobsDevice(t, s, "dev1")
	const p = "$aws/things/dev1/jobs/"
	ctx := t.Context()

	createJob(t, s, JobSpec{JobID: "t", Targets: []string{"dev1"}, Document: json.RawMessage(`{}`), InProgressTimeout: time.Minute,
		RetryConfig: retryConfig(jobstate.RetryCriteria{FailureType: jobstate.RetryFailed, NumberOfRetries: 3})})
	dev.expectPrefix(t, p+"notify", "{")
	dev.expectPrefix(t, p+"notify-next", "{")
	dev.publish(t, p+"start-next", `{}`)
	dev.expectPrefix(t, p+"start-next/accepted", "{")
	dev.expectPrefix(t, p+"notify", "{")
	clock.Advance(time.Minute)
	dev.expectJSON(t, p+"notify", `{"timestamp":"T+60","jobs":{}}`)
	dev.expectJSON(t, p+"notify-next", `{"timestamp":"T+60"}`)
	if job, _ := s.DescribeJob(ctx, "t"); job.Status != jobstate.JobCompleted || job.Executions[0].Status != jobstate.TimedOut || len(job.EarlierExecutions) != 0 {
		t.Errorf("TIMED_OUT under a FAILED criterion: %+v", job)
	}

	createJob(t, s, JobSpec{JobID: "none", Targets: []string{"dev1"}, Document: json.RawMessage(`{}`)})
	dev.expectPrefix(t, p+"notify", "{")
	dev.expectPrefix(t, p+"notify-next", "{")
	dev.publish(t, p+"none/update", `{"status":"FAILED"}`)
	dev.expectPrefix(t, p+"none/update/accepted", "{")
	dev.expectJSON(t, p+"notify", `{"timestamp":"T+60","jobs":{}}`)
	dev.expectJSON(t, p+"notify-next", `{"timestamp":"T+60"}`)

	createJob(t, s, JobSpec{JobID: "c", Targets: []string{"dev1"}, Document: json.RawMessage(`{}`),
		RetryConfig: retryConfig(jobstate.RetryCriteria{FailureType: jobstate.RetryAll, NumberOfRetries: 3})})
	dev.expectPrefix(t, p+"notify", "{")
	dev.expectPrefix(t, p+"notify-next", "{")
	dev.publish(t, p+"start-next", `{}`)
	dev.expectPrefix(t, p+"start-next/accepted", "{")
	dev.expectPrefix(t, p+"notify", "{")
	if _, err := s.CancelJob(ctx, "c", CancelJobOptions{}); err != nil {
		t.Fatal(err)
	}
	dev.publish(t, p+"c/update", `{"status":"FAILED"}`)
	dev.expectPrefix(t, p+"c/update/accepted", "{")
	dev.expectJSON(t, p+"notify", `{"timestamp":"T+60","jobs":{}}`)
	dev.expectJSON(t, p+"notify-next", `{"timestamp":"T+60"}`)
	if job, _ := s.DescribeJob(ctx, "c"); job.Executions[0].Status != jobstate.Failed || len(job.EarlierExecutions) != 0 {
		t.Errorf("FAILED after CancelJob: %+v", job)
	}
	dev.expectNothingPending(t, "dev1")
}

// TestJobsRetryConfigPersists: a BoltStore keeps the retry configuration and the
// earlier executions, which the next retry decision counts.
func TestJobsRetryConfigPersists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "jobs.db")
	store, err := OpenBoltStore(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	clock := newFakeClock()
	s := startServer(t, Options{Plain: &PlainListener{ThingFromClientID: true}, Clock: clock, Store: store})
	createJob(t, s, JobSpec{JobID: "j", Targets: []string{"dev1"}, Document: json.RawMessage(`{}`),
		RetryConfig: retryConfig(jobstate.RetryCriteria{FailureType: jobstate.RetryFailed, NumberOfRetries: 1})})
	dev := mustConnect(t, s.Endpoints().Plain, "dev1")
	dev.publish(t, "$aws/things/dev1/jobs/j/update", `{"status":"FAILED"}`)
	dev.expectPrefix(t, "$aws/things/dev1/jobs/j/update/accepted", "{")
	want, _ := s.DescribeJob(t.Context(), "j")

	jobs, err := store.LoadJobs()
	if err != nil || len(jobs) != 1 {
		t.Fatalf("LoadJobs: %v, %v", jobs, err)
	}
	got := jobs[0]
	if got.RetryConfig == nil || len(got.RetryConfig.CriteriaList) != 1 || got.RetryConfig.CriteriaList[0] != want.RetryConfig.CriteriaList[0] ||
		len(got.EarlierExecutions) != 1 || got.EarlierExecutions[0].ExecutionNumber != 1 || got.Executions[0].ExecutionNumber != 2 {
		t.Errorf("stored job %+v, want %+v", got, want)
	}
}

// TestControlPlaneRetryConfig: CreateJob over HTTPS takes jobExecutionsRetryConfig,
// DescribeJob shows it, and after a failure ListJobExecutionsForJob and
// DescribeJobExecution show execution number 2 (retryAttempt 1), with number 1 still
// describable.
func TestControlPlaneRetryConfig(t *testing.T) {
	s, certs, _ := startControlPlane(t)
	app := controlClient(t, s, certs, dpOperator)
	dev := jobsDevice(t, s, "lamp-1")
	ctx := t.Context()
	const p = "$aws/things/lamp-1/jobs/"

	_, err := app.CreateJob(ctx, &iot.CreateJobInput{
		JobId:    aws.String("fw"),
		Targets:  []string{testThingARN + "lamp-1"},
		Document: aws.String(`{}`),
		JobExecutionsRetryConfig: &types.JobExecutionsRetryConfig{CriteriaList: []types.RetryCriteria{
			{FailureType: types.RetryableFailureTypeFailed, NumberOfRetries: aws.Int32(2)},
			{FailureType: types.RetryableFailureTypeAll, NumberOfRetries: aws.Int32(3)},
		}},
	})
	if err != nil {
		t.Fatalf("CreateJob: %v", err)
	}
	dev.expectPrefix(t, p+"notify", "{")
	dev.expectPrefix(t, p+"notify-next", "{")
	desc, err := app.DescribeJob(ctx, &iot.DescribeJobInput{JobId: aws.String("fw")})
	if err != nil {
		t.Fatalf("DescribeJob: %v", err)
	}
	if rc := desc.Job.JobExecutionsRetryConfig; rc == nil || len(rc.CriteriaList) != 2 ||
		rc.CriteriaList[0].FailureType != types.RetryableFailureTypeFailed || aws.ToInt32(rc.CriteriaList[0].NumberOfRetries) != 2 ||
		rc.CriteriaList[1].FailureType != types.RetryableFailureTypeAll || aws.ToInt32(rc.CriteriaList[1].NumberOfRetries) != 3 {
		t.Errorf("DescribeJob's jobExecutionsRetryConfig: %+v", rc)
	}

	dev.publish(t, p+"fw/update", `{"status":"FAILED"}`)
	dev.expectPrefix(t, p+"fw/update/accepted", "{")
	dev.expectPrefix(t, p+"notify", "{")
	dev.expectPrefix(t, p+"notify-next", "{")

	list, err := app.ListJobExecutionsForJob(ctx, &iot.ListJobExecutionsForJobInput{JobId: aws.String("fw")})
	if err != nil {
		t.Fatalf("ListJobExecutionsForJob: %v", err)
	}
	if len(list.ExecutionSummaries) != 1 {
		t.Fatalf("ListJobExecutionsForJob: %d summaries, want 1", len(list.ExecutionSummaries))
	}
	if es := list.ExecutionSummaries[0].JobExecutionSummary; es == nil || aws.ToInt64(es.ExecutionNumber) != 2 || es.Status != types.JobExecutionStatusQueued || aws.ToInt32(es.RetryAttempt) != 1 {
		t.Errorf("ListJobExecutionsForJob: %+v", es)
	}
	ex, err := app.DescribeJobExecution(ctx, &iot.DescribeJobExecutionInput{JobId: aws.String("fw"), ThingName: aws.String("lamp-1")})
	if err != nil || aws.ToInt64(ex.Execution.ExecutionNumber) != 2 || ex.Execution.Status != types.JobExecutionStatusQueued || ex.Execution.VersionNumber != 1 {
		t.Errorf("DescribeJobExecution: %+v, %v", ex, err)
	}
	ex, err = app.DescribeJobExecution(ctx, &iot.DescribeJobExecutionInput{JobId: aws.String("fw"), ThingName: aws.String("lamp-1"), ExecutionNumber: aws.Int64(1)})
	if err != nil || aws.ToInt64(ex.Execution.ExecutionNumber) != 1 || ex.Execution.Status != types.JobExecutionStatusFailed {
		t.Errorf("DescribeJobExecution of number 1: %+v, %v", ex, err)
	}

	// An invalid configuration is refused.
	_, err = app.CreateJob(ctx, &iot.CreateJobInput{
		JobId: aws.String("bad"), Targets: []string{testThingARN + "lamp-1"}, Document: aws.String(`{}`),
		JobExecutionsRetryConfig: &types.JobExecutionsRetryConfig{CriteriaList: []types.RetryCriteria{
			{FailureType: types.RetryableFailureTypeTimedOut, NumberOfRetries: aws.Int32(11)},
		}},
	})
	var ire *types.InvalidRequestException
	if !errors.As(err, &ire) {
		t.Errorf("CreateJob with numberOfRetries 11: %v, want InvalidRequestException", err)
	}
}
