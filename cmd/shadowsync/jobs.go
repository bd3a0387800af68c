package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	"github.com/aws/aws-sdk-go-v2/service/iot/types"
	"github.com/aws/smithy-go"

	"github.com/shadowsync/shadowsync/jobstate"
)

// defaultJobsEndpoint is where the jobs commands connect by default: the HTTPS
// listener of `shadowsync serve --https 127.0.0.1:8443`.
const defaultJobsEndpoint = "https://127.0.0.1:8443"

// jobsSubcommands are the subcommands of `shadowsync jobs`, in the order usage lists
// them.
var jobsSubcommands = []struct {
	name, short string
	run         func(ctx context.Context, args []string, stdout io.Writer) error
}{
	{"create", "create a job on things: --job-id ID --thing NAME... --document FILE", runJobsCreate},
	{"list", "list jobs, or a job's (--job) or a thing's (--thing) executions", runJobsList},
	{"describe", "print a job (--job), or its execution on a thing (--job --thing)", runJobsDescribe},
	{"cancel", "cancel a job (--job), or its execution on a thing (--job --thing)", runJobsCancel},
	{"delete", "delete a job and its executions (--job)", runJobsDelete},
}

// runJobs manages jobs through the AWS IoT control plane's HTTPS API: localiot's (serve
// --https) or AWS IoT's, with the iot client of aws-sdk-go-v2.
func runJobs(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		jobsUsage(stderr)
		return fmt.Errorf("%w: jobs needs a subcommand: create, list, describe, cancel or delete", errUsage)
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		jobsUsage(stdout)
		return flag.ErrHelp
	}
	for _, sc := range jobsSubcommands {
		if sc.name == args[0] {
			return sc.run(ctx, args[1:], stdout)
		}
	}
	return fmt.Errorf("%w: unknown jobs subcommand %q: want create, list, describe, cancel or delete", errUsage, args[0])
}

func jobsUsage(w io.Writer) {
	fmt.Fprintln(w, "Usage: shadowsync jobs <subcommand> [flags]")
	fmt.Fprintln(w, "\nSubcommands:")
	for _, sc := range jobsSubcommands {
		fmt.Fprintf(w, "  %-9s %s\n", sc.name, sc.short)
	}
	fmt.Fprintln(w, "\nRun 'shadowsync jobs <subcommand> -h' for a subcommand's flags.")
}

// jobsFlags are the endpoint, credential and output flags every jobs subcommand has.
type jobsFlags struct {
	endpoint, ca, region string
	keyID, secret        string
	timeout              time.Duration
	json                 bool
}

func addJobsFlags(fs *flag.FlagSet) *jobsFlags {
	f := &jobsFlags{}
	fs.StringVar(&f.endpoint, "endpoint", defaultJobsEndpoint, "control plane `URL`: https://ADDR of `shadowsync serve --https ADDR`, or https://iot.REGION.amazonaws.com (AWS IoT)")
	fs.StringVar(&f.ca, "ca", "", "root CA `FILE` (PEM) to trust, e.g. ca.pem of serve's --certs directory (default: the system roots, plus ca.pem of serve's default certificate directory for a loopback endpoint)")
	fs.StringVar(&f.region, "region", "us-east-1", "AWS `REGION` to sign for and to name in thing ARNs")
	fs.StringVar(&f.keyID, "access-key-id", os.Getenv("AWS_ACCESS_KEY_ID"), "access key `ID` to sign with, as given to serve (default: $AWS_ACCESS_KEY_ID; with neither it nor the secret, the standard AWS chain)")
	fs.StringVar(&f.secret, "secret-access-key", "", "secret access `KEY` for --access-key-id (default: $AWS_SECRET_ACCESS_KEY)")
	fs.DurationVar(&f.timeout, "timeout", 10*time.Second, "bound on the whole command")
	fs.BoolVar(&f.json, "json", false, "print JSON, for scripts")
	return f
}

// parse parses a subcommand's flags and validates the shared ones.
func (f *jobsFlags) parse(fs *flag.FlagSet, args []string) error {
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	return f.validate()
}

// validate checks the shared flags after parsing; its errors are usage errors.
func (f *jobsFlags) validate() error {
	if f.secret == "" {
		f.secret = os.Getenv("AWS_SECRET_ACCESS_KEY")
	}
	u, err := url.Parse(f.endpoint)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("%w: --endpoint %q: want https://HOST[:PORT]", errUsage, f.endpoint)
	}
	if (f.keyID == "") != (f.secret == "") {
		return fmt.Errorf("%w: --access-key-id and --secret-access-key go together (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)", errUsage)
	}
	if f.region == "" {
		return fmt.Errorf("%w: --region is empty", errUsage)
	}
	if f.timeout <= 0 {
		return fmt.Errorf("%w: --timeout must be positive", errUsage)
	}
	return nil
}

// client returns the iot client the flags describe. Its HTTP transport is closed by
// the returned func.
func (f *jobsFlags) client(ctx context.Context) (*iot.Client, func(), error) {
	pool, err := f.rootCAs()
	if err != nil {
		return nil, nil, err
	}
	opts := iot.Options{
		Region:           f.region,
		BaseEndpoint:     aws.String(f.endpoint),
		RetryMaxAttempts: 1,
	}
	if f.keyID != "" {
		opts.Credentials = credentials.NewStaticCredentialsProvider(f.keyID, f.secret, os.Getenv("AWS_SESSION_TOKEN"))
	} else {
		cfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(f.region))
		if err != nil {
			return nil, nil, fmt.Errorf("AWS credentials: %w", err)
		}
		opts.Credentials = cfg.Credentials
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, ForceAttemptHTTP2: true}
	opts.HTTPClient = &http.Client{Transport: tr}
	return iot.New(opts), tr.CloseIdleConnections, nil
}

// connect bounds ctx by --timeout and returns it with the control-plane client; done
// releases both.
func (f *jobsFlags) connect(ctx context.Context) (context.Context, *iot.Client, func(), error) {
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	app, closeIdle, err := f.client(ctx)
	if err != nil {
		cancel()
		return nil, nil, nil, err
	}
	return ctx, app, func() { closeIdle(); cancel() }, nil
}

// rootCAs returns the CAs to trust: --ca's, or the system roots plus, for a loopback
// endpoint, the CA `shadowsync serve` keeps in its default certificate directory.
func (f *jobsFlags) rootCAs() (*x509.CertPool, error) {
	if f.ca != "" {
		pem, err := os.ReadFile(f.ca)
		if err != nil {
			return nil, fmt.Errorf("%w: --ca: %v", errUsage, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: --ca %s: no PEM certificate found", errUsage, f.ca)
		}
		return pool, nil
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	u, _ := url.Parse(f.endpoint)
	if !isLoopbackAddr(net.JoinHostPort(u.Hostname(), "0")) {
		return pool, nil
	}
	if cache, err := os.UserCacheDir(); err == nil {
		if pem, err := os.ReadFile(filepath.Join(cache, "shadowsync", "certs", "ca.pem")); err == nil {
			pool.AppendCertsFromPEM(pem)
		}
	}
	return pool, nil
}

// explain turns a control plane failure into what the user reads: AWS's error
// type and message, and a hint when nothing answers at the default endpoint.
func (f *jobsFlags) explain(what string, err error) error {
	var api smithy.APIError
	if errors.As(err, &api) {
		return fmt.Errorf("%s: %s: %s", what, api.ErrorCode(), api.ErrorMessage())
	}
	var ue *url.Error
	if f.endpoint == defaultJobsEndpoint && errors.As(err, &ue) {
		return fmt.Errorf("%s: %w (is `shadowsync serve --https 127.0.0.1:8443` running? use --endpoint for another)", what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// checkJob checks a --job or --job-id value.
func checkJob(flagName, id string) error {
	if id == "" {
		return fmt.Errorf("%w: %s is required", errUsage, flagName)
	}
	if err := jobstate.ValidateJobID(id); err != nil {
		return fmt.Errorf("%w: %s: %v", errUsage, flagName, err)
	}
	return nil
}

func checkThing(name string) error {
	if err := jobstate.ValidateThingName(name); err != nil {
		return fmt.Errorf("%w: --thing: %v", errUsage, err)
	}
	return nil
}

// checkOptionalThing checks --thing when it is set.
func checkOptionalThing(name string) error {
	if name == "" {
		return nil
	}
	return checkThing(name)
}

// thingARN is the ARN CreateJob takes for a thing. localiot accepts any account; AWS
// IoT needs the real one (create's --account).
func thingARN(region, account, thing string) string {
	return fmt.Sprintf("arn:aws:iot:%s:%s:thing/%s", region, account, thing)
}

// thingOfARN returns the thing name of a thing ARN, or the ARN itself.
func thingOfARN(arn string) string {
	if i := strings.LastIndex(arn, ":thing/"); i >= 0 {
		return arn[i+len(":thing/"):]
	}
	return arn
}

// The JSON the jobs subcommands print with --json: AWS's field names, thing names
// rather than ARNs, and RFC 3339 times.
type (
	jobJSON struct {
		JobID                    string          `json:"jobId"`
		JobArn                   string          `json:"jobArn,omitempty"`
		Status                   string          `json:"status,omitempty"`
		Description              string          `json:"description,omitempty"`
		Targets                  []string        `json:"targets,omitempty"`
		Document                 json.RawMessage `json:"document,omitempty"`
		InProgressTimeoutMinutes int64           `json:"inProgressTimeoutInMinutes,omitempty"`
		ForceCanceled            bool            `json:"forceCanceled,omitempty"`
		ReasonCode               string          `json:"reasonCode,omitempty"`
		Comment                  string          `json:"comment,omitempty"`
		CreatedAt                *time.Time      `json:"createdAt,omitempty"`
		LastUpdatedAt            *time.Time      `json:"lastUpdatedAt,omitempty"`
		CompletedAt              *time.Time      `json:"completedAt,omitempty"`
		Executions               map[string]int  `json:"executions,omitempty"`
	}
	executionJSON struct {
		JobID                            string            `json:"jobId"`
		ThingName                        string            `json:"thingName"`
		Status                           string            `json:"status"`
		ExecutionNumber                  int64             `json:"executionNumber,omitempty"`
		VersionNumber                    int64             `json:"versionNumber,omitempty"`
		StatusDetails                    map[string]string `json:"statusDetails,omitempty"`
		ForceCanceled                    bool              `json:"forceCanceled,omitempty"`
		QueuedAt                         *time.Time        `json:"queuedAt,omitempty"`
		StartedAt                        *time.Time        `json:"startedAt,omitempty"`
		LastUpdatedAt                    *time.Time        `json:"lastUpdatedAt,omitempty"`
		ApproximateSecondsBeforeTimedOut int64             `json:"approximateSecondsBeforeTimedOut,omitempty"`
	}
)

// utc returns t in UTC, nil for nil, so that printed times do not depend on the zone.
func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// when prints a time for people, "-" for none.
func when(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func runJobsCreate(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet("jobs create", stdout)
	jf := addJobsFlags(fs)
	var (
		jobID       = fs.String("job-id", "", "`ID` of the new job: 1 to 64 of a-z, A-Z, 0-9, '_' and '-' (required)")
		docFile     = fs.String("document", "", "`FILE` holding the job document, a JSON object; - for standard input (required)")
		description = fs.String("description", "", "`TEXT` describing the job")
		timeout     = fs.Duration("in-progress-timeout", 0, "how long an execution may stay IN_PROGRESS before it is TIMED_OUT: whole minutes from 1m to 168h (default: no limit)")
		account     = fs.String("account", "123456789012", "AWS account `ID` in the thing ARNs (localiot accepts any)")
		things      listFlag
	)
	fs.Var(&things, "thing", "thing `NAME` to run the job on (repeatable; at least one)")
	if err := jf.parse(fs, args); err != nil {
		return err
	}
	if err := checkJob("--job-id", *jobID); err != nil {
		return err
	}
	if len(things) == 0 {
		return fmt.Errorf("%w: --thing is required: name at least one thing to run the job on", errUsage)
	}
	for _, t := range things {
		if err := checkThing(t); err != nil {
			return err
		}
	}
	if *docFile == "" {
		return fmt.Errorf("%w: --document is required: a file holding the job document, a JSON object", errUsage)
	}
	var (
		doc []byte
		err error
	)
	if *docFile == "-" {
		doc, err = io.ReadAll(os.Stdin)
	} else {
		doc, err = os.ReadFile(*docFile)
	}
	if err != nil {
		return fmt.Errorf("%w: --document: %v", errUsage, err)
	}
	if err := jobstate.ValidateDocument(json.RawMessage(doc)); err != nil {
		return fmt.Errorf("%w: --document %s: %v", errUsage, *docFile, err)
	}
	in := &iot.CreateJobInput{JobId: jobID, Document: aws.String(string(doc))}
	if *description != "" {
		in.Description = description
	}
	if d := *timeout; d != 0 {
		if d%time.Minute != 0 || d < jobstate.MinStepTimeoutMinutes*time.Minute || d > jobstate.MaxStepTimeoutMinutes*time.Minute {
			return fmt.Errorf("%w: --in-progress-timeout %v: want whole minutes from 1m to 168h", errUsage, d)
		}
		in.TimeoutConfig = &types.TimeoutConfig{InProgressTimeoutInMinutes: aws.Int64(int64(d / time.Minute))}
	}
	for _, t := range things {
		in.Targets = append(in.Targets, thingARN(jf.region, *account, t))
	}
	ctx, app, done, err := jf.connect(ctx)
	if err != nil {
		return err
	}
	defer done()
	out, err := app.CreateJob(ctx, in)
	if err != nil {
		return jf.explain("create job "+*jobID, err)
	}
	if jf.json {
		return printJSON(stdout, jobJSON{JobID: aws.ToString(out.JobId), JobArn: aws.ToString(out.JobArn), Description: aws.ToString(out.Description), Targets: things})
	}
	fmt.Fprintf(stdout, "created job %s on %s\n", aws.ToString(out.JobId), strings.Join(things, ", "))
	return nil
}

func runJobsList(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet("jobs list", stdout)
	jf := addJobsFlags(fs)
	var (
		thing  = fs.String("thing", "", "list this thing's job executions, pending ones first (default: list jobs)")
		job    = fs.String("job", "", "list this job's executions, one per thing (default: list jobs)")
		status = fs.String("status", "", "list only jobs (IN_PROGRESS, CANCELED, COMPLETED) or executions (QUEUED, IN_PROGRESS, SUCCEEDED, ...) with this `STATUS`")
	)
	if err := jf.parse(fs, args); err != nil {
		return err
	}
	if *thing != "" && *job != "" {
		return fmt.Errorf("%w: give --thing or --job, not both: describe --job J --thing T shows one execution", errUsage)
	}
	if *job != "" {
		if err := checkJob("--job", *job); err != nil {
			return err
		}
	}
	if err := checkOptionalThing(*thing); err != nil {
		return err
	}
	jobStatuses := []string{"IN_PROGRESS", "CANCELED", "COMPLETED"}
	execStatuses := []string{"QUEUED", "IN_PROGRESS", "SUCCEEDED", "FAILED", "TIMED_OUT", "REJECTED", "REMOVED", "CANCELED"}
	switch {
	case *status == "":
	case *thing == "" && *job == "" && !slices.Contains(jobStatuses, *status):
		return fmt.Errorf("%w: --status %q: a job's status is one of %s", errUsage, *status, strings.Join(jobStatuses, ", "))
	case (*thing != "" || *job != "") && !slices.Contains(execStatuses, *status):
		return fmt.Errorf("%w: --status %q: an execution's status is one of %s", errUsage, *status, strings.Join(execStatuses, ", "))
	}
	ctx, app, done, err := jf.connect(ctx)
	if err != nil {
		return err
	}
	defer done()

	if *thing == "" && *job == "" {
		jobs := []jobJSON{}
		for pg := iot.NewListJobsPaginator(app, &iot.ListJobsInput{Status: types.JobStatus(*status)}); pg.HasMorePages(); {
			out, err := pg.NextPage(ctx)
			if err != nil {
				return jf.explain("list jobs", err)
			}
			for _, j := range out.Jobs {
				jobs = append(jobs, jobJSON{JobID: aws.ToString(j.JobId), JobArn: aws.ToString(j.JobArn), Status: string(j.Status),
					CreatedAt: utc(j.CreatedAt), LastUpdatedAt: utc(j.LastUpdatedAt), CompletedAt: utc(j.CompletedAt)})
			}
		}
		if jf.json {
			return printJSON(stdout, jobs)
		}
		fmt.Fprintf(stdout, "%-24s %-12s %-21s %s\n", "JOB", "STATUS", "CREATED", "COMPLETED")
		for _, j := range jobs {
			fmt.Fprintf(stdout, "%-24s %-12s %-21s %s\n", j.JobID, j.Status, when(j.CreatedAt), when(j.CompletedAt))
		}
		return nil
	}

	execs := []executionJSON{}
	if *job != "" {
		for pg := iot.NewListJobExecutionsForJobPaginator(app, &iot.ListJobExecutionsForJobInput{JobId: job, Status: types.JobExecutionStatus(*status)}); pg.HasMorePages(); {
			out, err := pg.NextPage(ctx)
			if err != nil {
				return jf.explain("list executions of job "+*job, err)
			}
			for _, e := range out.ExecutionSummaries {
				execs = append(execs, summaryJSON(*job, thingOfARN(aws.ToString(e.ThingArn)), e.JobExecutionSummary))
			}
		}
	} else {
		for pg := iot.NewListJobExecutionsForThingPaginator(app, &iot.ListJobExecutionsForThingInput{ThingName: thing, Status: types.JobExecutionStatus(*status)}); pg.HasMorePages(); {
			out, err := pg.NextPage(ctx)
			if err != nil {
				return jf.explain("list executions on thing "+*thing, err)
			}
			for _, e := range out.ExecutionSummaries {
				execs = append(execs, summaryJSON(aws.ToString(e.JobId), *thing, e.JobExecutionSummary))
			}
		}
	}
	if jf.json {
		return printJSON(stdout, execs)
	}
	fmt.Fprintf(stdout, "%-24s %-24s %-12s %-21s %s\n", "JOB", "THING", "STATUS", "QUEUED", "LAST UPDATED")
	for _, e := range execs {
		fmt.Fprintf(stdout, "%-24s %-24s %-12s %-21s %s\n", e.JobID, e.ThingName, e.Status, when(e.QueuedAt), when(e.LastUpdatedAt))
	}
	return nil
}

func summaryJSON(job, thing string, s *types.JobExecutionSummary) executionJSON {
	e := executionJSON{JobID: job, ThingName: thing}
	if s != nil {
		e.Status, e.ExecutionNumber = string(s.Status), aws.ToInt64(s.ExecutionNumber)
		e.QueuedAt, e.StartedAt, e.LastUpdatedAt = utc(s.QueuedAt), utc(s.StartedAt), utc(s.LastUpdatedAt)
	}
	return e
}

func runJobsDescribe(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet("jobs describe", stdout)
	jf := addJobsFlags(fs)
	var (
		job   = fs.String("job", "", "the job's `ID` (required)")
		thing = fs.String("thing", "", "describe the job's execution on this thing `NAME` instead of the job")
	)
	if err := jf.parse(fs, args); err != nil {
		return err
	}
	if err := checkJob("--job", *job); err != nil {
		return err
	}
	if err := checkOptionalThing(*thing); err != nil {
		return err
	}
	ctx, app, done, err := jf.connect(ctx)
	if err != nil {
		return err
	}
	defer done()

	if *thing != "" {
		out, err := app.DescribeJobExecution(ctx, &iot.DescribeJobExecutionInput{JobId: job, ThingName: thing})
		if err != nil {
			return jf.explain(fmt.Sprintf("describe job %s on thing %s", *job, *thing), err)
		}
		x := out.Execution
		e := executionJSON{JobID: *job, ThingName: *thing, Status: string(x.Status), ExecutionNumber: aws.ToInt64(x.ExecutionNumber),
			VersionNumber: x.VersionNumber, ForceCanceled: aws.ToBool(x.ForceCanceled), QueuedAt: utc(x.QueuedAt), StartedAt: utc(x.StartedAt),
			LastUpdatedAt: utc(x.LastUpdatedAt), ApproximateSecondsBeforeTimedOut: aws.ToInt64(x.ApproximateSecondsBeforeTimedOut)}
		if x.StatusDetails != nil {
			e.StatusDetails = x.StatusDetails.DetailsMap
		}
		if jf.json {
			return printJSON(stdout, e)
		}
		details, _ := json.Marshal(e.StatusDetails)
		if e.StatusDetails == nil {
			details = []byte("{}")
		}
		fmt.Fprintf(stdout, "job        %s\n", e.JobID)
		fmt.Fprintf(stdout, "thing      %s\n", e.ThingName)
		fmt.Fprintf(stdout, "status     %s\n", e.Status)
		fmt.Fprintf(stdout, "details    %s\n", details)
		fmt.Fprintf(stdout, "version    %d\n", e.VersionNumber)
		fmt.Fprintf(stdout, "queued     %s\n", when(e.QueuedAt))
		fmt.Fprintf(stdout, "started    %s\n", when(e.StartedAt))
		fmt.Fprintf(stdout, "updated    %s\n", when(e.LastUpdatedAt))
		if e.ApproximateSecondsBeforeTimedOut > 0 {
			fmt.Fprintf(stdout, "times out  in about %v\n", time.Duration(e.ApproximateSecondsBeforeTimedOut)*time.Second)
		}
		return nil
	}

	out, err := app.DescribeJob(ctx, &iot.DescribeJobInput{JobId: job})
	if err != nil {
		return jf.explain("describe job "+*job, err)
	}
	doc, err := app.GetJobDocument(ctx, &iot.GetJobDocumentInput{JobId: job})
	if err != nil {
		return jf.explain("get the document of job "+*job, err)
	}
	x := out.Job
	j := jobJSON{JobID: aws.ToString(x.JobId), JobArn: aws.ToString(x.JobArn), Status: string(x.Status), Description: aws.ToString(x.Description),
		ForceCanceled: aws.ToBool(x.ForceCanceled), ReasonCode: aws.ToString(x.ReasonCode), Comment: aws.ToString(x.Comment),
		CreatedAt: utc(x.CreatedAt), LastUpdatedAt: utc(x.LastUpdatedAt), CompletedAt: utc(x.CompletedAt)}
	if d := aws.ToString(doc.Document); json.Valid([]byte(d)) {
		j.Document = json.RawMessage(d)
	}
	for _, arn := range x.Targets {
		j.Targets = append(j.Targets, thingOfARN(arn))
	}
	if x.TimeoutConfig != nil {
		j.InProgressTimeoutMinutes = aws.ToInt64(x.TimeoutConfig.InProgressTimeoutInMinutes)
	}
	if p := x.JobProcessDetails; p != nil {
		j.Executions = map[string]int{}
		for status, n := range map[string]*int32{
			"QUEUED": p.NumberOfQueuedThings, "IN_PROGRESS": p.NumberOfInProgressThings, "SUCCEEDED": p.NumberOfSucceededThings,
			"FAILED": p.NumberOfFailedThings, "REJECTED": p.NumberOfRejectedThings, "TIMED_OUT": p.NumberOfTimedOutThings,
			"CANCELED": p.NumberOfCanceledThings, "REMOVED": p.NumberOfRemovedThings,
		} {
			if aws.ToInt32(n) > 0 {
				j.Executions[status] = int(aws.ToInt32(n))
			}
		}
	}
	if jf.json {
		return printJSON(stdout, j)
	}
	fmt.Fprintf(stdout, "job          %s\n", j.JobID)
	fmt.Fprintf(stdout, "arn          %s\n", j.JobArn)
	fmt.Fprintf(stdout, "status       %s\n", j.Status)
	if j.Description != "" {
		fmt.Fprintf(stdout, "description  %s\n", j.Description)
	}
	fmt.Fprintf(stdout, "targets      %s\n", strings.Join(j.Targets, ", "))
	fmt.Fprintf(stdout, "document     %s\n", j.Document)
	if j.InProgressTimeoutMinutes > 0 {
		fmt.Fprintf(stdout, "timeout      %v in progress\n", time.Duration(j.InProgressTimeoutMinutes)*time.Minute)
	}
	var counts []string
	for _, s := range []string{"QUEUED", "IN_PROGRESS", "SUCCEEDED", "FAILED", "REJECTED", "TIMED_OUT", "CANCELED", "REMOVED"} {
		if n := j.Executions[s]; n > 0 {
			counts = append(counts, fmt.Sprintf("%d %s", n, s))
		}
	}
	fmt.Fprintf(stdout, "executions   %s\n", strings.Join(counts, ", "))
	fmt.Fprintf(stdout, "created      %s\n", when(j.CreatedAt))
	if j.CompletedAt != nil {
		fmt.Fprintf(stdout, "completed    %s\n", when(j.CompletedAt))
	}
	if j.ForceCanceled || j.ReasonCode != "" || j.Comment != "" {
		fmt.Fprintf(stdout, "canceled     force=%t reason=%q comment=%q\n", j.ForceCanceled, j.ReasonCode, j.Comment)
	}
	return nil
}

func runJobsCancel(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet("jobs cancel", stdout)
	jf := addJobsFlags(fs)
	var (
		job     = fs.String("job", "", "the job's `ID` (required)")
		thing   = fs.String("thing", "", "cancel only the job's execution on this thing `NAME`")
		force   = fs.Bool("force", false, "cancel IN_PROGRESS executions too (default: only QUEUED ones; running ones finish)")
		reason  = fs.String("reason-code", "", "reason `CODE` kept with the canceled job: upper-case letters, digits and '_'")
		comment = fs.String("comment", "", "`TEXT` kept with the canceled job")
	)
	if err := jf.parse(fs, args); err != nil {
		return err
	}
	if err := checkJob("--job", *job); err != nil {
		return err
	}
	if err := checkOptionalThing(*thing); err != nil {
		return err
	}
	if *thing != "" && (*reason != "" || *comment != "") {
		return fmt.Errorf("%w: --reason-code and --comment are for a whole job, not one thing's execution", errUsage)
	}
	ctx, app, done, err := jf.connect(ctx)
	if err != nil {
		return err
	}
	defer done()
	if *thing != "" {
		if _, err := app.CancelJobExecution(ctx, &iot.CancelJobExecutionInput{JobId: job, ThingName: thing, Force: *force}); err != nil {
			return jf.explain(fmt.Sprintf("cancel job %s on thing %s", *job, *thing), err)
		}
		if jf.json {
			return printJSON(stdout, executionJSON{JobID: *job, ThingName: *thing, Status: "CANCELED"})
		}
		fmt.Fprintf(stdout, "canceled job %s on %s\n", *job, *thing)
		return nil
	}
	in := &iot.CancelJobInput{JobId: job, Force: *force}
	if *reason != "" {
		in.ReasonCode = reason
	}
	if *comment != "" {
		in.Comment = comment
	}
	out, err := app.CancelJob(ctx, in)
	if err != nil {
		return jf.explain("cancel job "+*job, err)
	}
	if jf.json {
		return printJSON(stdout, jobJSON{JobID: aws.ToString(out.JobId), JobArn: aws.ToString(out.JobArn), Status: "CANCELED", Description: aws.ToString(out.Description)})
	}
	if *force {
		fmt.Fprintf(stdout, "canceled job %s and its queued and in-progress executions\n", *job)
	} else {
		fmt.Fprintf(stdout, "canceled job %s and its queued executions (in-progress ones finish; --force cancels them)\n", *job)
	}
	return nil
}

func runJobsDelete(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet("jobs delete", stdout)
	jf := addJobsFlags(fs)
	var (
		job   = fs.String("job", "", "the job's `ID` (required)")
		force = fs.Bool("force", false, "delete an IN_PROGRESS job too (default: only a COMPLETED or CANCELED one)")
	)
	if err := jf.parse(fs, args); err != nil {
		return err
	}
	if err := checkJob("--job", *job); err != nil {
		return err
	}
	ctx, app, done, err := jf.connect(ctx)
	if err != nil {
		return err
	}
	defer done()
	if _, err := app.DeleteJob(ctx, &iot.DeleteJobInput{JobId: job, Force: *force}); err != nil {
		var state *types.InvalidStateTransitionException
		if errors.As(err, &state) && !*force {
			return fmt.Errorf("%w (cancel it first, or use --force)", jf.explain("delete job "+*job, err))
		}
		return jf.explain("delete job "+*job, err)
	}
	if jf.json {
		return printJSON(stdout, map[string]any{"jobId": *job, "deleted": true})
	}
	fmt.Fprintf(stdout, "deleted job %s\n", *job)
	return nil
}
