package localiot

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	"github.com/aws/aws-sdk-go-v2/service/iot/types"
	"github.com/aws/aws-sdk-go-v2/service/iotdataplane"

	"github.com/shadowsync/shadowsync/jobstate"
)

// startControlPlane starts a server on a fake clock whose plain clients act as the thing
// named by their client ID, with the HTTPS listener that serves the jobs control plane.
func startControlPlane(t *testing.T) (*Server, *CertSet, *fakeClock) {
	t.Helper()
	certs, err := EnsureCerts("")
	if err != nil {
		t.Fatal(err)
	}
	clock := newFakeClock()
	s := startServer(t, Options{
		Plain: &PlainListener{ThingFromClientID: true},
		HTTPS: &HTTPSListener{Certificate: certs.Server, Credentials: []Credential{dpOperator, dpThing}},
		Clock: clock,
	})
	return s, certs, clock
}

// controlClient returns aws-sdk-go-v2's IoT (control plane) client for srv, signing
// with cred, over an HTTP client that trusts localiot's CA and makes one attempt per
// call.
func controlClient(t *testing.T, srv *Server, certs *CertSet, cred Credential, optFns ...func(*iot.Options)) *iot.Client {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: certs.Pool}, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	return iot.New(iot.Options{
		Region:           "eu-west-1",
		BaseEndpoint:     aws.String(srv.Endpoints().HTTPS),
		Credentials:      credentials.NewStaticCredentialsProvider(cred.AccessKeyID, cred.SecretAccessKey, cred.SessionToken),
		HTTPClient:       &http.Client{Transport: tr, Timeout: wait},
		RetryMaxAttempts: 1,
	}, optFns...)
}

const (
	testThingARN = "arn:aws:iot:eu-west-1:123456789012:thing/"
	testJobARN   = "arn:aws:iot:eu-west-1:123456789012:job/"
)

// TestControlPlaneJobLifecycle drives a job through the control plane with the AWS
// SDK's iot client while a device works it over MQTT: the device hears of the job the
// control plane created, and the control plane sees what the device did.
func TestControlPlaneJobLifecycle(t *testing.T) {
	s, certs, clock := startControlPlane(t)
	app := controlClient(t, s, certs, dpOperator)
	dev := jobsDevice(t, s, "lamp-1")
	ctx := t.Context()
	const p = "$aws/things/lamp-1/jobs/"

	created, err := app.CreateJob(ctx, &iot.CreateJobInput{
		JobId:         aws.String("fw-1"),
		Targets:       []string{testThingARN + "lamp-1"},
		Document:      aws.String(`{"operation":"upgrade","version":"2.0"}`),
		Description:   aws.String("firmware 2.0"),
		TimeoutConfig: &types.TimeoutConfig{InProgressTimeoutInMinutes: aws.Int64(10)},
		Tags:          []types.Tag{{Key: aws.String("team"), Value: aws.String("lamps")}},
	})
	if err != nil {
		t.Fatalf("CreateJob: %v", err)
	}
	if aws.ToString(created.JobArn) != testJobARN+"fw-1" || aws.ToString(created.JobId) != "fw-1" || aws.ToString(created.Description) != "firmware 2.0" {
		t.Errorf("CreateJob answered %s %s %q", aws.ToString(created.JobArn), aws.ToString(created.JobId), aws.ToString(created.Description))
	}
	dev.expectJSON(t, p+"notify", `{"timestamp":"T+0","jobs":{"QUEUED":[{"jobId":"fw-1","queuedAt":"T+0","lastUpdatedAt":"T+0","versionNumber":1,"executionNumber":1}]}}`)
	dev.expectJSON(t, p+"notify-next", `{"timestamp":"T+0","execution":{"jobId":"fw-1","thingName":"lamp-1","jobDocument":{"operation":"upgrade","version":"2.0"},"status":"QUEUED","queuedAt":"T+0","lastUpdatedAt":"T+0","versionNumber":1,"executionNumber":1}}`)

	desc, err := app.DescribeJob(ctx, &iot.DescribeJobInput{JobId: aws.String("fw-1")})
	if err != nil {
		t.Fatalf("DescribeJob: %v", err)
	}
	j := desc.Job
	if aws.ToString(j.JobArn) != testJobARN+"fw-1" || j.Status != types.JobStatusInProgress || !slices.Equal(j.Targets, []string{testThingARN + "lamp-1"}) ||
		aws.ToString(j.Description) != "firmware 2.0" || j.TargetSelection != types.TargetSelectionSnapshot ||
		j.TimeoutConfig == nil || aws.ToInt64(j.TimeoutConfig.InProgressTimeoutInMinutes) != 10 ||
		!aws.ToTime(j.CreatedAt).Equal(t0) || j.CompletedAt != nil ||
		j.JobProcessDetails == nil || aws.ToInt32(j.JobProcessDetails.NumberOfQueuedThings) != 1 {
		t.Errorf("DescribeJob: %+v", j)
	}
	doc, err := app.GetJobDocument(ctx, &iot.GetJobDocumentInput{JobId: aws.String("fw-1")})
	if err != nil || aws.ToString(doc.Document) != `{"operation":"upgrade","version":"2.0"}` {
		t.Errorf("GetJobDocument: %v, %v", err, doc)
	}

	// The device starts the job; the control plane sees it IN_PROGRESS with the
	// in-progress timeout running.
	clock.Advance(time.Minute)
	dev.publish(t, p+"start-next", `{"statusDetails":{"step":"download"}}`)
	dev.expectPrefix(t, p+"start-next/accepted", `{"execution":{"jobId":"fw-1"`)
	dev.expectPrefix(t, p+"notify", `{"timestamp"`)
	clock.Advance(time.Minute)
	ex, err := app.DescribeJobExecution(ctx, &iot.DescribeJobExecutionInput{JobId: aws.String("fw-1"), ThingName: aws.String("lamp-1"), ExecutionNumber: aws.Int64(1)})
	if err != nil {
		t.Fatalf("DescribeJobExecution: %v", err)
	}
	e := ex.Execution
	if e.Status != types.JobExecutionStatusInProgress || aws.ToString(e.ThingArn) != testThingARN+"lamp-1" || aws.ToString(e.JobId) != "fw-1" ||
		e.VersionNumber != 2 || aws.ToInt64(e.ExecutionNumber) != 1 || aws.ToInt64(e.ApproximateSecondsBeforeTimedOut) != 9*60 ||
		!aws.ToTime(e.StartedAt).Equal(t0.Add(time.Minute)) || e.StatusDetails == nil || e.StatusDetails.DetailsMap["step"] != "download" {
		t.Errorf("DescribeJobExecution: %+v", e)
	}

	forJob, err := app.ListJobExecutionsForJob(ctx, &iot.ListJobExecutionsForJobInput{JobId: aws.String("fw-1")})
	if err != nil || len(forJob.ExecutionSummaries) != 1 || aws.ToString(forJob.ExecutionSummaries[0].ThingArn) != testThingARN+"lamp-1" ||
		forJob.ExecutionSummaries[0].JobExecutionSummary.Status != types.JobExecutionStatusInProgress || forJob.NextToken != nil {
		t.Errorf("ListJobExecutionsForJob: %v, %+v", err, forJob)
	}
	forThing, err := app.ListJobExecutionsForThing(ctx, &iot.ListJobExecutionsForThingInput{ThingName: aws.String("lamp-1")})
	if err != nil || len(forThing.ExecutionSummaries) != 1 || aws.ToString(forThing.ExecutionSummaries[0].JobId) != "fw-1" ||
		aws.ToInt64(forThing.ExecutionSummaries[0].JobExecutionSummary.ExecutionNumber) != 1 {
		t.Errorf("ListJobExecutionsForThing: %v, %+v", err, forThing)
	}

	// Canceling without force leaves the running execution alone; with force it is
	// canceled, and the device is told.
	if _, err := app.CancelJob(ctx, &iot.CancelJobInput{JobId: aws.String("fw-1"), ReasonCode: aws.String("BAD_BUILD"), Comment: aws.String("wrong image")}); err != nil {
		t.Fatalf("CancelJob: %v", err)
	}
	if got := executionStatus(t, app, "fw-1", "lamp-1"); got != types.JobExecutionStatusInProgress {
		t.Errorf("after CancelJob without force the execution is %s, want IN_PROGRESS", got)
	}
	dev.expectNothingPending(t, "lamp-1")
	if _, err := app.CancelJob(ctx, &iot.CancelJobInput{JobId: aws.String("fw-1"), Force: true}); err != nil {
		t.Fatalf("CancelJob with force: %v", err)
	}
	dev.expectJSON(t, p+"notify", `{"timestamp":"T+120","jobs":{}}`)
	dev.expectJSON(t, p+"notify-next", `{"timestamp":"T+120"}`)
	ex, err = app.DescribeJobExecution(ctx, &iot.DescribeJobExecutionInput{JobId: aws.String("fw-1"), ThingName: aws.String("lamp-1")})
	if err != nil || ex.Execution.Status != types.JobExecutionStatusCanceled || !aws.ToBool(ex.Execution.ForceCanceled) {
		t.Errorf("execution after a forced cancel: %v, %+v", err, ex)
	}
	desc, err = app.DescribeJob(ctx, &iot.DescribeJobInput{JobId: aws.String("fw-1")})
	if err != nil || desc.Job.Status != types.JobStatusCanceled || !aws.ToBool(desc.Job.ForceCanceled) ||
		aws.ToString(desc.Job.ReasonCode) != "" || !aws.ToTime(desc.Job.CompletedAt).Equal(t0.Add(2*time.Minute)) ||
		aws.ToInt32(desc.Job.JobProcessDetails.NumberOfCanceledThings) != 1 {
		t.Errorf("job after a forced cancel: %v, %+v", err, desc.Job)
	}

	if _, err := app.DeleteJob(ctx, &iot.DeleteJobInput{JobId: aws.String("fw-1")}); err != nil {
		t.Fatalf("DeleteJob: %v", err)
	}
	_, err = app.DescribeJob(ctx, &iot.DescribeJobInput{JobId: aws.String("fw-1")})
	var nf *types.ResourceNotFoundException
	if !errors.As(err, &nf) {
		t.Errorf("DescribeJob after DeleteJob: %v, want ResourceNotFoundException", err)
	}
}

func executionStatus(t *testing.T, app *iot.Client, job, thing string) types.JobExecutionStatus {
	t.Helper()
	out, err := app.DescribeJobExecution(t.Context(), &iot.DescribeJobExecutionInput{JobId: aws.String(job), ThingName: aws.String(thing)})
	if err != nil {
		t.Fatalf("DescribeJobExecution %s on %s: %v", job, thing, err)
	}
	return out.Execution.Status
}

// TestControlPlaneLists: ListJobs and the ListJobExecutions operations page with
// maxResults and nextToken, and filter by status, as the SDK's paginators use them.
func TestControlPlaneLists(t *testing.T) {
	s, certs, _ := startControlPlane(t)
	app := controlClient(t, s, certs, dpOperator)
	ctx := t.Context()
	for _, id := range []string{"a", "b", "c"} {
		createJob(t, s, JobSpec{JobID: id, Targets: []string{"t1", "t2", "t3"}, Document: json.RawMessage(`{}`)})
	}
	if _, err := app.CancelJob(ctx, &iot.CancelJobInput{JobId: aws.String("b")}); err != nil {
		t.Fatal(err)
	}

	var ids []string
	pages := 0
	for pg := iot.NewListJobsPaginator(app, &iot.ListJobsInput{MaxResults: aws.Int32(2)}); pg.HasMorePages(); pages++ {
		out, err := pg.NextPage(ctx)
		if err != nil {
			t.Fatalf("ListJobs: %v", err)
		}
		for _, j := range out.Jobs {
			ids = append(ids, aws.ToString(j.JobId)+":"+string(j.Status))
		}
	}
	if want := []string{"a:IN_PROGRESS", "b:CANCELED", "c:IN_PROGRESS"}; !slices.Equal(ids, want) || pages != 2 {
		t.Errorf("ListJobs by 2: %v in %d pages, want %v in 2", ids, pages, want)
	}
	out, err := app.ListJobs(ctx, &iot.ListJobsInput{Status: types.JobStatusCanceled})
	if err != nil || len(out.Jobs) != 1 || aws.ToString(out.Jobs[0].JobId) != "b" || aws.ToString(out.Jobs[0].JobArn) != testJobARN+"b" {
		t.Errorf("ListJobs status CANCELED: %v, %+v", err, out)
	}
	out, err = app.ListJobs(ctx, &iot.ListJobsInput{ThingGroupName: aws.String("lamps")})
	if err != nil || len(out.Jobs) != 0 {
		t.Errorf("ListJobs of a thing group: %v, %+v; want none (localiot has no groups)", err, out)
	}

	var things []string
	for pg := iot.NewListJobExecutionsForJobPaginator(app, &iot.ListJobExecutionsForJobInput{JobId: aws.String("a"), MaxResults: aws.Int32(1)}); pg.HasMorePages(); {
		out, err := pg.NextPage(ctx)
		if err != nil {
			t.Fatalf("ListJobExecutionsForJob: %v", err)
		}
		for _, e := range out.ExecutionSummaries {
			things = append(things, aws.ToString(e.ThingArn))
		}
	}
	if want := []string{testThingARN + "t1", testThingARN + "t2", testThingARN + "t3"}; !slices.Equal(things, want) {
		t.Errorf("ListJobExecutionsForJob by 1: %v, want %v", things, want)
	}

	var jobs []string
	for pg := iot.NewListJobExecutionsForThingPaginator(app, &iot.ListJobExecutionsForThingInput{ThingName: aws.String("t2"), MaxResults: aws.Int32(2)}); pg.HasMorePages(); {
		out, err := pg.NextPage(ctx)
		if err != nil {
			t.Fatalf("ListJobExecutionsForThing: %v", err)
		}
		for _, e := range out.ExecutionSummaries {
			jobs = append(jobs, aws.ToString(e.JobId)+":"+string(e.JobExecutionSummary.Status))
		}
	}
	// Pending executions first, in queue order; then the terminal ones.
	if want := []string{"a:QUEUED", "c:QUEUED", "b:CANCELED"}; !slices.Equal(jobs, want) {
		t.Errorf("ListJobExecutionsForThing t2 by 2: %v, want %v", jobs, want)
	}
	forThing, err := app.ListJobExecutionsForThing(ctx, &iot.ListJobExecutionsForThingInput{ThingName: aws.String("t2"), Status: types.JobExecutionStatusCanceled})
	if err != nil || len(forThing.ExecutionSummaries) != 1 || aws.ToString(forThing.ExecutionSummaries[0].JobId) != "b" {
		t.Errorf("ListJobExecutionsForThing status CANCELED: %v, %+v", err, forThing)
	}
	forThing, err = app.ListJobExecutionsForThing(ctx, &iot.ListJobExecutionsForThingInput{ThingName: aws.String("t2"), JobId: aws.String("c")})
	if err != nil || len(forThing.ExecutionSummaries) != 1 || aws.ToString(forThing.ExecutionSummaries[0].JobId) != "c" {
		t.Errorf("ListJobExecutionsForThing jobId c: %v, %+v", err, forThing)
	}
	forThing, err = app.ListJobExecutionsForThing(ctx, &iot.ListJobExecutionsForThingInput{ThingName: aws.String("nobody")})
	if err != nil || len(forThing.ExecutionSummaries) != 0 {
		t.Errorf("ListJobExecutionsForThing of a thing with no jobs: %v, %+v", err, forThing)
	}
}

// TestControlPlaneCancelJobExecution: one thing's execution is canceled, checking
// expectedVersion and keeping the status details given.
func TestControlPlaneCancelJobExecution(t *testing.T) {
	s, certs, _ := startControlPlane(t)
	app := controlClient(t, s, certs, dpOperator)
	ctx := t.Context()
	createJob(t, s, JobSpec{JobID: "j", Targets: []string{"t1", "t2"}, Document: json.RawMessage(`{}`)})

	_, err := app.CancelJobExecution(ctx, &iot.CancelJobExecutionInput{JobId: aws.String("j"), ThingName: aws.String("t1"), ExpectedVersion: aws.Int64(7)})
	wantAPIError(t, "CancelJobExecution with a stale expectedVersion", err, http.StatusConflict, "VersionConflictException")
	if _, err := app.CancelJobExecution(ctx, &iot.CancelJobExecutionInput{
		JobId: aws.String("j"), ThingName: aws.String("t1"), ExpectedVersion: aws.Int64(1), StatusDetails: map[string]string{"why": "unplugged"},
	}); err != nil {
		t.Fatalf("CancelJobExecution: %v", err)
	}
	ex, err := app.DescribeJobExecution(ctx, &iot.DescribeJobExecutionInput{JobId: aws.String("j"), ThingName: aws.String("t1")})
	if err != nil || ex.Execution.Status != types.JobExecutionStatusCanceled || aws.ToBool(ex.Execution.ForceCanceled) || ex.Execution.StatusDetails.DetailsMap["why"] != "unplugged" {
		t.Errorf("after CancelJobExecution: %v, %+v", err, ex)
	}
	if got := executionStatus(t, app, "j", "t2"); got != types.JobExecutionStatusQueued {
		t.Errorf("the other thing's execution is %s, want QUEUED", got)
	}
	_, err = app.CancelJobExecution(ctx, &iot.CancelJobExecutionInput{JobId: aws.String("j"), ThingName: aws.String("t1")})
	wantAPIError(t, "CancelJobExecution of a canceled execution", err, http.StatusConflict, "InvalidStateTransitionException")
}

// TestControlPlaneErrors: every refusal carries the status code and error type the
// AWS IoT API reference gives it, which the SDK turns into its typed errors.
func TestControlPlaneErrors(t *testing.T) {
	s, certs, _ := startControlPlane(t)
	app := controlClient(t, s, certs, dpOperator)
	ctx := t.Context()
	createJob(t, s, JobSpec{JobID: "running", Targets: []string{"t1"}, Document: json.RawMessage(`{}`)})
	createJob(t, s, JobSpec{JobID: "done", Targets: []string{"t9"}, Document: json.RawMessage(`{}`)})
	dev := mustConnect(t, s.Endpoints().Plain, "t9")
	dev.mustSubscribe(t, "$aws/things/t9/jobs/done/update/accepted")
	dev.publish(t, "$aws/things/t9/jobs/done/update", `{"status":"SUCCEEDED"}`)
	dev.expectPrefix(t, "$aws/things/t9/jobs/done/update/accepted", `{`)

	create := func(id string, mod func(*iot.CreateJobInput)) error {
		in := &iot.CreateJobInput{JobId: aws.String(id), Targets: []string{testThingARN + "t1"}, Document: aws.String(`{"op":"x"}`)}
		if mod != nil {
			mod(in)
		}
		_, err := app.CreateJob(ctx, in)
		return err
	}
	const (
		badRequest = http.StatusBadRequest
		notFound   = http.StatusNotFound
		conflict   = http.StatusConflict
	)
	for _, tc := range []struct {
		name    string
		call    func() error
		status  int
		errType string
	}{
		{"CreateJob of an existing job", func() error { return create("running", nil) }, conflict, "ResourceAlreadyExistsException"},
		{"CreateJob with an invalid job ID", func() error { return create("no spaces", nil) }, badRequest, "InvalidRequestException"},
		{"CreateJob with a document that is not an object", func() error {
			return create("j1", func(in *iot.CreateJobInput) { in.Document = aws.String(`[1]`) })
		}, badRequest, "InvalidRequestException"},
		{"CreateJob without a document", func() error {
			return create("j1", func(in *iot.CreateJobInput) { in.Document = nil })
		}, badRequest, "InvalidRequestException"},
		{"CreateJob with a document source", func() error {
			return create("j1", func(in *iot.CreateJobInput) {
				in.Document, in.DocumentSource = nil, aws.String("https://s3.amazonaws.com/b/doc.json")
			})
		}, badRequest, "InvalidRequestException"},
		{"CreateJob with a thing group", func() error {
			return create("j1", func(in *iot.CreateJobInput) {
				in.Targets = []string{"arn:aws:iot:eu-west-1:123456789012:thinggroup/lamps"}
			})
		}, badRequest, "InvalidRequestException"},
		{"CreateJob with a bare thing name", func() error {
			return create("j1", func(in *iot.CreateJobInput) { in.Targets = []string{"t1"} })
		}, badRequest, "InvalidRequestException"},
		{"CreateJob with no targets", func() error {
			return create("j1", func(in *iot.CreateJobInput) { in.Targets = []string{} })
		}, badRequest, "InvalidRequestException"},
		{"CreateJob with a target twice", func() error {
			return create("j1", func(in *iot.CreateJobInput) { in.Targets = append(in.Targets, in.Targets[0]) })
		}, badRequest, "InvalidRequestException"},
		{"CreateJob of a continuous job", func() error {
			return create("j1", func(in *iot.CreateJobInput) { in.TargetSelection = types.TargetSelectionContinuous })
		}, badRequest, "InvalidRequestException"},
		{"CreateJob with a rollout", func() error {
			return create("j1", func(in *iot.CreateJobInput) {
				in.JobExecutionsRolloutConfig = &types.JobExecutionsRolloutConfig{MaximumPerMinute: aws.Int32(5)}
			})
		}, badRequest, "InvalidRequestException"},
		{"CreateJob with a zero in-progress timeout", func() error {
			return create("j1", func(in *iot.CreateJobInput) {
				in.TimeoutConfig = &types.TimeoutConfig{InProgressTimeoutInMinutes: aws.Int64(0)}
			})
		}, badRequest, "InvalidRequestException"},
		{"CreateJob with an in-progress timeout over 7 days", func() error {
			return create("j1", func(in *iot.CreateJobInput) {
				in.TimeoutConfig = &types.TimeoutConfig{InProgressTimeoutInMinutes: aws.Int64(10081)}
			})
		}, badRequest, "InvalidRequestException"},
		{"DescribeJob of an unknown job", func() error {
			_, err := app.DescribeJob(ctx, &iot.DescribeJobInput{JobId: aws.String("nope")})
			return err
		}, notFound, "ResourceNotFoundException"},
		{"GetJobDocument of an unknown job", func() error {
			_, err := app.GetJobDocument(ctx, &iot.GetJobDocumentInput{JobId: aws.String("nope")})
			return err
		}, notFound, "ResourceNotFoundException"},
		{"CancelJob of an unknown job", func() error {
			_, err := app.CancelJob(ctx, &iot.CancelJobInput{JobId: aws.String("nope")})
			return err
		}, notFound, "ResourceNotFoundException"},
		{"CancelJob of a COMPLETED job", func() error {
			_, err := app.CancelJob(ctx, &iot.CancelJobInput{JobId: aws.String("done")})
			return err
		}, badRequest, "InvalidRequestException"},
		{"CancelJob with a lower-case reason code", func() error {
			_, err := app.CancelJob(ctx, &iot.CancelJobInput{JobId: aws.String("running"), ReasonCode: aws.String("oops")})
			return err
		}, badRequest, "InvalidRequestException"},
		{"DeleteJob of an unknown job", func() error {
			_, err := app.DeleteJob(ctx, &iot.DeleteJobInput{JobId: aws.String("nope")})
			return err
		}, notFound, "ResourceNotFoundException"},
		{"DeleteJob of an IN_PROGRESS job without force", func() error {
			_, err := app.DeleteJob(ctx, &iot.DeleteJobInput{JobId: aws.String("running")})
			return err
		}, conflict, "InvalidStateTransitionException"},
		{"DescribeJobExecution of an unknown job", func() error {
			_, err := app.DescribeJobExecution(ctx, &iot.DescribeJobExecutionInput{JobId: aws.String("nope"), ThingName: aws.String("t1")})
			return err
		}, notFound, "ResourceNotFoundException"},
		{"DescribeJobExecution on a thing the job does not target", func() error {
			_, err := app.DescribeJobExecution(ctx, &iot.DescribeJobExecutionInput{JobId: aws.String("running"), ThingName: aws.String("t2")})
			return err
		}, notFound, "ResourceNotFoundException"},
		{"DescribeJobExecution of another execution number", func() error {
			_, err := app.DescribeJobExecution(ctx, &iot.DescribeJobExecutionInput{JobId: aws.String("running"), ThingName: aws.String("t1"), ExecutionNumber: aws.Int64(2)})
			return err
		}, notFound, "ResourceNotFoundException"},
		{"DescribeJobExecution with an invalid thing name", func() error {
			_, err := app.DescribeJobExecution(ctx, &iot.DescribeJobExecutionInput{JobId: aws.String("running"), ThingName: aws.String("a b")})
			return err
		}, badRequest, "InvalidRequestException"},
		{"ListJobExecutionsForJob of an unknown job", func() error {
			_, err := app.ListJobExecutionsForJob(ctx, &iot.ListJobExecutionsForJobInput{JobId: aws.String("nope")})
			return err
		}, notFound, "ResourceNotFoundException"},
		{"ListJobExecutionsForJob with maxResults 0", func() error {
			_, err := app.ListJobExecutionsForJob(ctx, &iot.ListJobExecutionsForJobInput{JobId: aws.String("running"), MaxResults: aws.Int32(0)})
			return err
		}, badRequest, "InvalidRequestException"},
		{"ListJobExecutionsForThing with a made-up nextToken", func() error {
			_, err := app.ListJobExecutionsForThing(ctx, &iot.ListJobExecutionsForThingInput{ThingName: aws.String("t1"), NextToken: aws.String("bogus")})
			return err
		}, badRequest, "InvalidRequestException"},
		{"ListJobExecutionsForThing with an unknown status", func() error {
			_, err := app.ListJobExecutionsForThing(ctx, &iot.ListJobExecutionsForThingInput{ThingName: aws.String("t1"), Status: "BOGUS"})
			return err
		}, badRequest, "InvalidRequestException"},
		{"ListJobs with maxResults 251", func() error {
			_, err := app.ListJobs(ctx, &iot.ListJobsInput{MaxResults: aws.Int32(251)})
			return err
		}, badRequest, "InvalidRequestException"},
		{"CancelJobExecution of an unknown execution", func() error {
			_, err := app.CancelJobExecution(ctx, &iot.CancelJobExecutionInput{JobId: aws.String("running"), ThingName: aws.String("t2")})
			return err
		}, notFound, "ResourceNotFoundException"},
		{"CancelJobExecution of a SUCCEEDED execution", func() error {
			_, err := app.CancelJobExecution(ctx, &iot.CancelJobExecutionInput{JobId: aws.String("done"), ThingName: aws.String("t9"), Force: true})
			return err
		}, conflict, "InvalidStateTransitionException"},
	} {
		wantAPIError(t, tc.name, tc.call(), tc.status, tc.errType)
	}

	// The typed errors the SDK declares for these operations.
	err := create("running", nil)
	var exists *types.ResourceAlreadyExistsException
	if !errors.As(err, &exists) {
		t.Errorf("CreateJob of an existing job: %T %v, want *types.ResourceAlreadyExistsException", err, err)
	}
	_, err = app.DeleteJob(ctx, &iot.DeleteJobInput{JobId: aws.String("running")})
	var state *types.InvalidStateTransitionException
	if !errors.As(err, &state) {
		t.Errorf("DeleteJob of an IN_PROGRESS job: %T %v, want *types.InvalidStateTransitionException", err, err)
	}
	err = create("x y", nil)
	var inv *types.InvalidRequestException
	if !errors.As(err, &inv) {
		t.Errorf("CreateJob with an invalid ID: %T %v, want *types.InvalidRequestException", err, err)
	}

	// A refused request changes nothing.
	job, err := s.DescribeJob(ctx, "running")
	if err != nil || job.Status != jobstate.JobInProgress || job.Executions[0].Status != jobstate.Queued {
		t.Errorf("job after the refusals: %v, %+v", err, job)
	}
	if jobs, _ := s.ListJobs(ctx); len(jobs) != 2 {
		t.Errorf("%d jobs after the refusals, want 2", len(jobs))
	}
}

// TestControlPlaneAuth: only operators' keys, signing for service iot, may use the
// control plane; the data plane's service name does not reach it, nor the control
// plane's the data plane.
func TestControlPlaneAuth(t *testing.T) {
	s, certs, _ := startControlPlane(t)
	ctx := t.Context()
	list := func(app *iot.Client) error {
		_, err := app.ListJobs(ctx, &iot.ListJobsInput{})
		return err
	}
	wantAPIError(t, "a thing's key", list(controlClient(t, s, certs, dpThing)), http.StatusUnauthorized, "UnauthorizedException")
	wrong := dpOperator
	wrong.SecretAccessKey = "not-the-secret"
	wantAPIError(t, "a wrong secret", list(controlClient(t, s, certs, wrong)), http.StatusForbidden, "ForbiddenException")
	wantAPIError(t, "signed for iotdata", list(controlClient(t, s, certs, dpOperator, iot.WithSigV4SigningName("iotdata"))), http.StatusForbidden, "ForbiddenException")
	if err := list(controlClient(t, s, certs, dpOperator)); err != nil {
		t.Errorf("ListJobs with the operator's key: %v", err)
	}

	data := dataClient(t, s, certs, dpOperator, iotdataplane.WithSigV4SigningName("iot"))
	_, err := data.UpdateThingShadow(ctx, &iotdataplane.UpdateThingShadowInput{ThingName: aws.String("t1"), Payload: []byte(`{"state":{"desired":{"on":true}}}`)})
	wantAPIError(t, "a shadow update signed for iot", err, http.StatusForbidden, "ForbiddenException")
}
