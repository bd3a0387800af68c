package localiot

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/shadowsync/shadowsync/jobstate"
)

// The Jobs operations of AWS IoT's control plane, served on the HTTPS listener to
// requests signed for service iot. Paths, query parameters, bodies, answers and error
// types are those of the AWS IoT API reference; what localiot does not implement
// (thing groups, S3 documents, rollouts, ...) is refused with InvalidRequestException
// naming it, rather than ignored.

// Control plane settings.
const (
	// serviceIoTControl is the service name AWS IoT's control plane is signed with.
	serviceIoTControl = "iot"
	// defaultAccountID is the account in ARNs when HTTPSListener.AccountID is "".
	defaultAccountID = "123456789012"
	// maxJobsPageSize is the largest maxResults of ListJobs and the
	// ListJobExecutions operations (AWS's limit), and their page size without one.
	maxJobsPageSize = 250
	// AWS's limits on CreateJob's description and CancelJob's comment and reasonCode.
	maxJobDescriptionLen = 2028
	maxJobCommentLen     = 2028
	maxJobReasonCodeLen  = 128
)

// Error types of the control plane that are not the data plane's for their status.
const (
	errTypeInvalidRequest  = "InvalidRequestException"
	errTypeNotFound        = "ResourceNotFoundException"
	errTypeAlreadyExists   = "ResourceAlreadyExistsException"
	errTypeInvalidState    = "InvalidStateTransitionException"
	errTypeVersionConflict = "VersionConflictException"
	errTypeInternal        = "InternalFailureException"
)

func validAccountID(s string) bool {
	if len(s) != 12 {
		return false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// isControlPath reports whether the escaped path is the control plane's: /jobs,
// /jobs/..., /things/{thing}/jobs or /things/{thing}/jobs/....
func isControlPath(path string) bool {
	if path == "/jobs" || strings.HasPrefix(path, "/jobs/") {
		return true
	}
	rest, ok := strings.CutPrefix(path, thingsPrefix)
	if !ok {
		return false
	}
	_, tail, _ := strings.Cut(rest, "/")
	return tail == "jobs" || strings.HasPrefix(tail, "jobs/")
}

// controlRequest is one authenticated control plane request.
type controlRequest struct {
	dp     *dataPlane
	w      http.ResponseWriter
	r      *http.Request
	q      url.Values
	region string // the signature's, for ARNs
	body   []byte
}

// control routes a control plane request by path and method. Only operators may use
// it: a thing's credential is refused with 401, as the data plane refuses what the
// thing may not do.
func (dp *dataPlane) control(w http.ResponseWriter, r *http.Request, p principal, region string, body []byte) error {
	if !p.operator {
		return newAPIError(http.StatusUnauthorized, "You are not authorized to perform this operation: the control plane needs an operator's access key")
	}
	var segs []string
	for s := range strings.SplitSeq(strings.TrimPrefix(r.URL.EscapedPath(), "/"), "/") {
		u, err := url.PathUnescape(s)
		if err != nil {
			return newAPIError(http.StatusNotFound, "Not Found")
		}
		segs = append(segs, u)
	}
	c := &controlRequest{dp: dp, w: w, r: r, q: r.URL.Query(), region: region, body: body}
	type route struct {
		method string
		run    func() error
	}
	var routes []route
	switch {
	case len(segs) == 1 && segs[0] == "jobs":
		routes = []route{{http.MethodGet, c.listJobs}}
	case len(segs) == 2 && segs[0] == "jobs":
		id := segs[1]
		routes = []route{
			{http.MethodPut, func() error { return c.createJob(id) }},
			{http.MethodGet, func() error { return c.describeJob(id) }},
			{http.MethodDelete, func() error { return c.deleteJob(id) }},
		}
	case len(segs) == 3 && segs[0] == "jobs" && segs[2] == "cancel":
		routes = []route{{http.MethodPut, func() error { return c.cancelJob(segs[1]) }}}
	case len(segs) == 3 && segs[0] == "jobs" && segs[2] == "things":
		routes = []route{{http.MethodGet, func() error { return c.listExecutionsForJob(segs[1]) }}}
	case len(segs) == 3 && segs[0] == "jobs" && segs[2] == "job-document":
		routes = []route{{http.MethodGet, func() error { return c.jobDocument(segs[1]) }}}
	case len(segs) == 3 && segs[0] == "things" && segs[2] == "jobs":
		routes = []route{{http.MethodGet, func() error { return c.listExecutionsForThing(segs[1]) }}}
	case len(segs) == 4 && segs[0] == "things" && segs[2] == "jobs":
		routes = []route{{http.MethodGet, func() error { return c.describeExecution(segs[3], segs[1]) }}}
	case len(segs) == 5 && segs[0] == "things" && segs[2] == "jobs" && segs[4] == "cancel":
		routes = []route{{http.MethodPut, func() error { return c.cancelExecution(segs[3], segs[1]) }}}
	default:
		return newAPIError(http.StatusNotFound, "Not Found")
	}
	for _, rt := range routes {
		if rt.method == r.Method {
			return rt.run()
		}
	}
	return newAPIError(http.StatusMethodNotAllowed, "The specified combination of HTTP verb and URI is not supported")
}

// invalid is an InvalidRequestException.
func invalid(format string, args ...any) error {
	return &apiError{status: http.StatusBadRequest, errType: errTypeInvalidRequest, message: fmt.Sprintf(format, args...)}
}

// jobsError maps an error of the Go jobs API to the control plane's answer. A state
// error is InvalidStateTransitionException, except for CancelJob (stateIsInvalid),
// whose API declares no such error: there it is InvalidRequestException.
func (c *controlRequest) jobsError(err error, stateIsInvalid bool) error {
	msg := strings.ReplaceAll(err.Error(), "localiot: ", "")
	switch {
	case errors.Is(err, ErrJobNotFound):
		return &apiError{status: http.StatusNotFound, errType: errTypeNotFound, message: msg}
	case errors.Is(err, ErrJobExists):
		return &apiError{status: http.StatusConflict, errType: errTypeAlreadyExists, message: msg}
	case errors.Is(err, ErrInvalidJob):
		return invalid("%s", msg)
	case errors.Is(err, errVersionConflict):
		return &apiError{status: http.StatusConflict, errType: errTypeVersionConflict, message: msg}
	case errors.Is(err, ErrJobState) && stateIsInvalid:
		return invalid("%s", msg)
	case errors.Is(err, ErrJobState):
		return &apiError{status: http.StatusConflict, errType: errTypeInvalidState, message: msg}
	}
	c.dp.srv.opts.Logger.Error("jobs control plane request failed", "path", c.r.URL.EscapedPath(), "error", err)
	return &apiError{status: http.StatusInternalServerError, errType: errTypeInternal, message: "Internal service failure"}
}

// write answers 200 with v as JSON, or with no body when v is nil.
func (c *controlRequest) write(v any) error {
	if v == nil {
		c.w.WriteHeader(http.StatusOK)
		return nil
	}
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	writeJSON(c.w, data)
	return nil
}

func (c *controlRequest) jobARN(id string) string {
	return fmt.Sprintf("arn:aws:iot:%s:%s:job/%s", c.region, c.dp.account, id)
}

func (c *controlRequest) thingARN(name string) string {
	return fmt.Sprintf("arn:aws:iot:%s:%s:thing/%s", c.region, c.dp.account, name)
}

// checkJobID refuses an invalid job ID in a path or query.
func checkJobID(id string) error {
	if err := jobstate.ValidateJobID(id); err != nil {
		return invalid("%v", err)
	}
	return nil
}

func checkThingName(name string) error {
	if err := jobstate.ValidateThingName(name); err != nil {
		return invalid("%v", err)
	}
	return nil
}

// boolParam returns the query's boolean name, false when absent.
func (c *controlRequest) boolParam(name string) (bool, error) {
	v := c.q.Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, invalid("%s %q: want true or false", name, v)
	}
	return b, nil
}

// unsupportedParam refuses a query parameter localiot does not implement.
func (c *controlRequest) unsupportedParam(names ...string) error {
	for _, n := range names {
		if c.q.Get(n) != "" {
			return invalid("%s is not supported by localiot", n)
		}
	}
	return nil
}

// decodeBody parses a JSON request body into v; an empty body is {}.
func (c *controlRequest) decodeBody(v any) error {
	if len(c.body) == 0 {
		return nil
	}
	if err := json.Unmarshal(c.body, v); err != nil {
		return invalid("the request body is not valid JSON for this operation: %v", err)
	}
	return nil
}

// awsTime is a time as the control plane's JSON has it: seconds since the epoch, with
// milliseconds.
type awsTime time.Time

func (t awsTime) IsZero() bool { return time.Time(t).IsZero() }

func (t awsTime) MarshalJSON() ([]byte, error) {
	return strconv.AppendFloat(nil, float64(time.Time(t).UnixMilli())/1000, 'f', -1, 64), nil
}

// Wire types of the control plane's answers.
type (
	jobWire struct {
		JobArn            string                `json:"jobArn"`
		JobID             string                `json:"jobId"`
		TargetSelection   string                `json:"targetSelection"`
		Status            jobstate.JobStatus    `json:"status"`
		ForceCanceled     bool                  `json:"forceCanceled"`
		ReasonCode        string                `json:"reasonCode,omitempty"`
		Comment           string                `json:"comment,omitempty"`
		Targets           []string              `json:"targets"`
		Description       string                `json:"description,omitempty"`
		CreatedAt         awsTime               `json:"createdAt"`
		LastUpdatedAt     awsTime               `json:"lastUpdatedAt"`
		CompletedAt       awsTime               `json:"completedAt,omitzero"`
		JobProcessDetails processDetailsWire    `json:"jobProcessDetails"`
		TimeoutConfig     *timeoutConfigWire    `json:"timeoutConfig,omitempty"`
		RetryConfig       *jobstate.RetryConfig `json:"jobExecutionsRetryConfig,omitempty"`
		IsConcurrent      bool                  `json:"isConcurrent"`
	}
	processDetailsWire struct {
		Canceled   int `json:"numberOfCanceledThings"`
		Succeeded  int `json:"numberOfSucceededThings"`
		Failed     int `json:"numberOfFailedThings"`
		Rejected   int `json:"numberOfRejectedThings"`
		Queued     int `json:"numberOfQueuedThings"`
		InProgress int `json:"numberOfInProgressThings"`
		Removed    int `json:"numberOfRemovedThings"`
		TimedOut   int `json:"numberOfTimedOutThings"`
	}
	timeoutConfigWire struct {
		InProgressTimeoutInMinutes int64 `json:"inProgressTimeoutInMinutes"`
	}
	jobSummaryWire struct {
		JobArn          string             `json:"jobArn"`
		JobID           string             `json:"jobId"`
		TargetSelection string             `json:"targetSelection"`
		Status          jobstate.JobStatus `json:"status"`
		CreatedAt       awsTime            `json:"createdAt"`
		LastUpdatedAt   awsTime            `json:"lastUpdatedAt"`
		CompletedAt     awsTime            `json:"completedAt,omitzero"`
		IsConcurrent    bool               `json:"isConcurrent"`
	}
	executionWire struct {
		JobID                            string             `json:"jobId"`
		Status                           jobstate.Status    `json:"status"`
		ForceCanceled                    bool               `json:"forceCanceled"`
		StatusDetails                    *statusDetailsWire `json:"statusDetails,omitempty"`
		ThingArn                         string             `json:"thingArn"`
		QueuedAt                         awsTime            `json:"queuedAt"`
		StartedAt                        awsTime            `json:"startedAt,omitzero"`
		LastUpdatedAt                    awsTime            `json:"lastUpdatedAt"`
		ExecutionNumber                  int64              `json:"executionNumber"`
		VersionNumber                    int64              `json:"versionNumber"`
		ApproximateSecondsBeforeTimedOut int64              `json:"approximateSecondsBeforeTimedOut,omitempty"`
	}
	statusDetailsWire struct {
		DetailsMap map[string]string `json:"detailsMap"`
	}
	executionSummWire struct {
		Status          jobstate.Status `json:"status"`
		QueuedAt        awsTime         `json:"queuedAt"`
		StartedAt       awsTime         `json:"startedAt,omitzero"`
		LastUpdatedAt   awsTime         `json:"lastUpdatedAt"`
		ExecutionNumber int64           `json:"executionNumber"`
		RetryAttempt    int             `json:"retryAttempt"`
	}
)

// forceCanceled reports whether e was canceled while IN_PROGRESS, which takes force.
func forceCanceled(e jobstate.Execution) bool {
	return e.Status == jobstate.Canceled && !e.StartedAt.IsZero()
}

func (c *controlRequest) job(j Job) jobWire {
	out := jobWire{
		JobArn:          c.jobARN(j.JobID),
		JobID:           j.JobID,
		TargetSelection: "SNAPSHOT",
		Status:          j.Status,
		ForceCanceled:   j.ForceCanceled,
		ReasonCode:      j.ReasonCode,
		Comment:         j.Comment,
		Description:     j.Description,
		CreatedAt:       awsTime(j.CreatedAt),
		LastUpdatedAt:   awsTime(j.LastUpdatedAt),
		CompletedAt:     awsTime(j.CompletedAt),
		RetryConfig:     j.RetryConfig,
	}
	for _, t := range j.Targets {
		out.Targets = append(out.Targets, c.thingARN(t))
	}
	if j.InProgressTimeout > 0 {
		out.TimeoutConfig = &timeoutConfigWire{InProgressTimeoutInMinutes: int64(j.InProgressTimeout / time.Minute)}
	}
	d := &out.JobProcessDetails
	for _, e := range j.Executions {
		switch e.Status {
		case jobstate.Canceled:
			d.Canceled++
		case jobstate.Succeeded:
			d.Succeeded++
		case jobstate.Failed:
			d.Failed++
		case jobstate.Rejected:
			d.Rejected++
		case jobstate.Queued:
			d.Queued++
		case jobstate.InProgress:
			d.InProgress++
		case jobstate.Removed:
			d.Removed++
		case jobstate.TimedOut:
			d.TimedOut++
		}
	}
	return out
}

func (c *controlRequest) execution(e jobstate.Execution) executionWire {
	out := executionWire{
		JobID:           e.JobID,
		Status:          e.Status,
		ForceCanceled:   forceCanceled(e),
		ThingArn:        c.thingARN(e.ThingName),
		QueuedAt:        awsTime(e.QueuedAt),
		StartedAt:       awsTime(e.StartedAt),
		LastUpdatedAt:   awsTime(e.LastUpdatedAt),
		ExecutionNumber: e.ExecutionNumber,
		VersionNumber:   e.VersionNumber,
	}
	if len(e.StatusDetails) > 0 {
		out.StatusDetails = &statusDetailsWire{DetailsMap: e.StatusDetails}
	}
	out.ApproximateSecondsBeforeTimedOut = e.Data(nil, c.dp.srv.jobs.clock.Now()).ApproximateSecondsBeforeTimedOut
	return out
}

func executionSummary(e jobstate.Execution) executionSummWire {
	return executionSummWire{
		Status:          e.Status,
		QueuedAt:        awsTime(e.QueuedAt),
		StartedAt:       awsTime(e.StartedAt),
		LastUpdatedAt:   awsTime(e.LastUpdatedAt),
		ExecutionNumber: e.ExecutionNumber,
		RetryAttempt:    int(max(e.ExecutionNumber-1, 0)),
	}
}

// page returns the bounds of the page of a list of n items that the query's maxResults
// (1 to 250, default 250) and nextToken ask for, and the nextToken of the page after
// it ("" when none follows). The token is the opaque offset of the page's first item.
func (c *controlRequest) page(n int) (lo, hi int, next string, err error) {
	size := maxJobsPageSize
	if v := c.q.Get("maxResults"); v != "" {
		size, err = strconv.Atoi(v)
		if err != nil || size < 1 || size > maxJobsPageSize {
			return 0, 0, "", invalid("maxResults %q: want 1 to %d", v, maxJobsPageSize)
		}
	}
	if tok := c.q.Get("nextToken"); tok != "" {
		raw, derr := base64.RawURLEncoding.DecodeString(tok)
		off, aerr := strconv.Atoi(strings.TrimPrefix(string(raw), "offset:"))
		if derr != nil || aerr != nil || !strings.HasPrefix(string(raw), "offset:") || off < 0 {
			return 0, 0, "", invalid("invalid nextToken")
		}
		lo = min(off, n)
	}
	hi = min(lo+size, n)
	if hi < n {
		next = base64.RawURLEncoding.EncodeToString([]byte("offset:" + strconv.Itoa(hi)))
	}
	return lo, hi, next, nil
}

// writePage writes the page of items that maxResults and nextToken ask for (see page)
// as {key: [wire(item), ...], nextToken}: an empty list rather than null, and no
// nextToken after the last page.
func writePage[T, W any](c *controlRequest, key string, items []T, wire func(T) W) error {
	lo, hi, next, err := c.page(len(items))
	if err != nil {
		return err
	}
	list := make([]W, 0, hi-lo)
	for _, it := range items[lo:hi] {
		list = append(list, wire(it))
	}
	out := map[string]any{key: list}
	if next != "" {
		out["nextToken"] = next
	}
	return c.write(out)
}

// statusParam returns the query's execution status filter, "" for none.
func (c *controlRequest) statusParam() (jobstate.Status, error) {
	v := jobstate.Status(c.q.Get("status"))
	switch v {
	case "", jobstate.Queued, jobstate.InProgress, jobstate.Succeeded, jobstate.Failed, jobstate.TimedOut,
		jobstate.Rejected, jobstate.Removed, jobstate.Canceled:
		return v, nil
	}
	return "", invalid("status %q is not a job execution status", v)
}

// createJobRequest is CreateJob's body. The fields localiot does not implement are
// kept raw so that giving one is refused by name.
type createJobRequest struct {
	Targets         []string `json:"targets"`
	Document        *string  `json:"document"`
	Description     string   `json:"description"`
	TargetSelection string   `json:"targetSelection"`
	TimeoutConfig   *struct {
		InProgressTimeoutInMinutes *int64 `json:"inProgressTimeoutInMinutes"`
	} `json:"timeoutConfig"`
	JobExecutionsRetryConfig *struct {
		CriteriaList []struct {
			FailureType     jobstate.RetryFailureType `json:"failureType"`
			NumberOfRetries *int                      `json:"numberOfRetries"`
		} `json:"criteriaList"`
	} `json:"jobExecutionsRetryConfig"`
	Tags json.RawMessage `json:"tags"` // accepted and not kept: localiot has no tagging API

	DocumentSource             json.RawMessage `json:"documentSource"`
	AbortConfig                json.RawMessage `json:"abortConfig"`
	JobExecutionsRolloutConfig json.RawMessage `json:"jobExecutionsRolloutConfig"`
	SchedulingConfig           json.RawMessage `json:"schedulingConfig"`
	PresignedURLConfig         json.RawMessage `json:"presignedUrlConfig"`
	JobTemplateArn             json.RawMessage `json:"jobTemplateArn"`
	NamespaceID                json.RawMessage `json:"namespaceId"`
	DocumentParameters         json.RawMessage `json:"documentParameters"`
	DestinationPackageVersions json.RawMessage `json:"destinationPackageVersions"`
}

// unsupported returns the first field of req that localiot does not implement and
// that the request sets, or "".
func (req *createJobRequest) unsupported() string {
	for _, f := range []struct {
		name string
		raw  json.RawMessage
	}{
		{"documentSource", req.DocumentSource},
		{"abortConfig", req.AbortConfig},
		{"jobExecutionsRolloutConfig", req.JobExecutionsRolloutConfig},
		{"schedulingConfig", req.SchedulingConfig},
		{"presignedUrlConfig", req.PresignedURLConfig},
		{"jobTemplateArn", req.JobTemplateArn},
		{"namespaceId", req.NamespaceID},
		{"documentParameters", req.DocumentParameters},
		{"destinationPackageVersions", req.DestinationPackageVersions},
	} {
		switch strings.TrimSpace(string(f.raw)) {
		case "", "null", "{}", "[]", `""`:
		default:
			return f.name
		}
	}
	return ""
}

// thingFromARN returns the thing an ARN arn:PARTITION:iot:REGION:ACCOUNT:thing/NAME
// names. The region and account are not checked: localiot has one account and serves
// any region.
func thingFromARN(arn string) (string, error) {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[2] != "iot" {
		return "", invalid("target %q is not a thing ARN (arn:aws:iot:REGION:ACCOUNT:thing/NAME)", arn)
	}
	kind, name, _ := strings.Cut(parts[5], "/")
	switch kind {
	case "thing":
		if err := jobstate.ValidateThingName(name); err != nil {
			return "", invalid("target %q: %v", arn, err)
		}
		return name, nil
	case "thinggroup":
		return "", invalid("target %q: thing groups are not supported by localiot; name the things", arn)
	}
	return "", invalid("target %q is not a thing ARN (arn:aws:iot:REGION:ACCOUNT:thing/NAME)", arn)
}

// checkText refuses a text field longer than max characters or with a control or
// format character (AWS's pattern [^\p{C}]+).
func checkText(name, v string, max int) error {
	if utf8.RuneCountInString(v) > max {
		return invalid("%s is longer than %d characters", name, max)
	}
	if strings.IndexFunc(v, func(r rune) bool { return unicode.Is(unicode.C, r) }) >= 0 {
		return invalid("%s has a control or format character", name)
	}
	return nil
}

// createJob answers CreateJob (PUT /jobs/{jobId}): {jobArn, jobId, description}.
func (c *controlRequest) createJob(id string) error {
	if err := checkJobID(id); err != nil {
		return err
	}
	var req createJobRequest
	if err := c.decodeBody(&req); err != nil {
		return err
	}
	if f := req.unsupported(); f != "" {
		return invalid("%s is not supported by localiot", f)
	}
	switch req.TargetSelection {
	case "", "SNAPSHOT":
	case "CONTINUOUS":
		return invalid("targetSelection CONTINUOUS is not supported by localiot: its jobs are SNAPSHOT jobs")
	default:
		return invalid("targetSelection %q: want SNAPSHOT or CONTINUOUS", req.TargetSelection)
	}
	if req.Document == nil {
		return invalid("document is required (documentSource is not supported by localiot)")
	}
	if len(req.Targets) == 0 {
		return invalid("targets is required: at least one thing ARN")
	}
	if err := checkText("description", req.Description, maxJobDescriptionLen); err != nil {
		return err
	}
	spec := JobSpec{JobID: id, Document: json.RawMessage(*req.Document), Description: req.Description}
	for _, arn := range req.Targets {
		thing, err := thingFromARN(arn)
		if err != nil {
			return err
		}
		spec.Targets = append(spec.Targets, thing)
	}
	if tc := req.TimeoutConfig; tc != nil && tc.InProgressTimeoutInMinutes != nil {
		m := *tc.InProgressTimeoutInMinutes
		if m < jobstate.MinStepTimeoutMinutes || m > jobstate.MaxStepTimeoutMinutes {
			return invalid("timeoutConfig.inProgressTimeoutInMinutes %d: want %d to %d", m, jobstate.MinStepTimeoutMinutes, jobstate.MaxStepTimeoutMinutes)
		}
		spec.InProgressTimeout = time.Duration(m) * time.Minute
	}
	if rc := req.JobExecutionsRetryConfig; rc != nil {
		spec.RetryConfig = &jobstate.RetryConfig{}
		for _, cr := range rc.CriteriaList {
			if cr.NumberOfRetries == nil {
				return invalid("jobExecutionsRetryConfig: numberOfRetries is required")
			}
			spec.RetryConfig.CriteriaList = append(spec.RetryConfig.CriteriaList, jobstate.RetryCriteria{FailureType: cr.FailureType, NumberOfRetries: *cr.NumberOfRetries})
		}
	}
	job, err := c.dp.srv.CreateJob(c.r.Context(), spec)
	if err != nil {
		return c.jobsError(err, false)
	}
	return c.write(map[string]string{"jobArn": c.jobARN(job.JobID), "jobId": job.JobID, "description": job.Description})
}

// describeJob answers DescribeJob (GET /jobs/{jobId}): {job}.
func (c *controlRequest) describeJob(id string) error {
	if err := checkJobID(id); err != nil {
		return err
	}
	job, err := c.dp.srv.DescribeJob(c.r.Context(), id)
	if err != nil {
		return c.jobsError(err, false)
	}
	return c.write(map[string]any{"job": c.job(job)})
}

// jobDocument answers GetJobDocument (GET /jobs/{jobId}/job-document): {document}.
func (c *controlRequest) jobDocument(id string) error {
	if err := checkJobID(id); err != nil {
		return err
	}
	job, err := c.dp.srv.DescribeJob(c.r.Context(), id)
	if err != nil {
		return c.jobsError(err, false)
	}
	return c.write(map[string]string{"document": string(job.Document)})
}

// cancelJob answers CancelJob (PUT /jobs/{jobId}/cancel?force=): {jobArn, jobId,
// description}.
func (c *controlRequest) cancelJob(id string) error {
	if err := checkJobID(id); err != nil {
		return err
	}
	force, err := c.boolParam("force")
	if err != nil {
		return err
	}
	var req struct {
		ReasonCode string `json:"reasonCode"`
		Comment    string `json:"comment"`
	}
	if err := c.decodeBody(&req); err != nil {
		return err
	}
	if err := checkText("comment", req.Comment, maxJobCommentLen); err != nil {
		return err
	}
	if len(req.ReasonCode) > maxJobReasonCodeLen || strings.IndexFunc(req.ReasonCode, func(r rune) bool {
		return !unicode.IsUpper(r) && !unicode.IsDigit(r) && r != '_'
	}) >= 0 {
		return invalid("reasonCode %q: want at most %d upper-case letters, digits and '_'", req.ReasonCode, maxJobReasonCodeLen)
	}
	job, err := c.dp.srv.CancelJob(c.r.Context(), id, CancelJobOptions{Force: force, ReasonCode: req.ReasonCode, Comment: req.Comment})
	if err != nil {
		return c.jobsError(err, true)
	}
	return c.write(map[string]string{"jobArn": c.jobARN(job.JobID), "jobId": job.JobID, "description": job.Description})
}

// deleteJob answers DeleteJob (DELETE /jobs/{jobId}?force=): 200 with no body.
func (c *controlRequest) deleteJob(id string) error {
	if err := checkJobID(id); err != nil {
		return err
	}
	force, err := c.boolParam("force")
	if err != nil {
		return err
	}
	if err := c.unsupportedParam("namespaceId"); err != nil {
		return err
	}
	if err := c.dp.srv.DeleteJob(c.r.Context(), id, force); err != nil {
		return c.jobsError(err, false)
	}
	return c.write(nil)
}

// listJobs answers ListJobs (GET /jobs): {jobs, nextToken}, in creation order. Filters
// on thing groups or a namespace match nothing: localiot's jobs have neither.
func (c *controlRequest) listJobs() error {
	jobs, err := c.dp.srv.ListJobs(c.r.Context())
	if err != nil {
		return c.jobsError(err, false)
	}
	status := jobstate.JobStatus(c.q.Get("status"))
	switch status {
	case "", jobstate.JobInProgress, jobstate.JobCanceled, jobstate.JobCompleted, "DELETION_IN_PROGRESS", "SCHEDULED":
	default:
		return invalid("status %q is not a job status", status)
	}
	sel := c.q.Get("targetSelection")
	if sel != "" && sel != "SNAPSHOT" && sel != "CONTINUOUS" {
		return invalid("targetSelection %q: want SNAPSHOT or CONTINUOUS", sel)
	}
	none := sel == "CONTINUOUS" || c.q.Get("thingGroupName") != "" || c.q.Get("thingGroupId") != "" || c.q.Get("namespaceId") != ""
	jobs = slices.DeleteFunc(jobs, func(j Job) bool { return none || status != "" && j.Status != status })
	return writePage(c, "jobs", jobs, func(j Job) jobSummaryWire {
		return jobSummaryWire{
			JobArn:          c.jobARN(j.JobID),
			JobID:           j.JobID,
			TargetSelection: "SNAPSHOT",
			Status:          j.Status,
			CreatedAt:       awsTime(j.CreatedAt),
			LastUpdatedAt:   awsTime(j.LastUpdatedAt),
			CompletedAt:     awsTime(j.CompletedAt),
		}
	})
}

// listExecutionsForJob answers ListJobExecutionsForJob (GET /jobs/{jobId}/things):
// {executionSummaries: [{thingArn, jobExecutionSummary}], nextToken}, in the job's
// targets' order.
func (c *controlRequest) listExecutionsForJob(id string) error {
	if err := checkJobID(id); err != nil {
		return err
	}
	status, err := c.statusParam()
	if err != nil {
		return err
	}
	execs, err := c.dp.srv.ListJobExecutionsForJob(c.r.Context(), id)
	if err != nil {
		return c.jobsError(err, false)
	}
	execs = slices.DeleteFunc(execs, func(e jobstate.Execution) bool { return status != "" && e.Status != status })
	type item struct {
		ThingArn            string            `json:"thingArn"`
		JobExecutionSummary executionSummWire `json:"jobExecutionSummary"`
	}
	return writePage(c, "executionSummaries", execs, func(e jobstate.Execution) item {
		return item{c.thingARN(e.ThingName), executionSummary(e)}
	})
}

// listExecutionsForThing answers ListJobExecutionsForThing (GET
// /things/{thingName}/jobs): {executionSummaries: [{jobId, jobExecutionSummary}],
// nextToken}, pending executions first in the order the thing gets them. A thing with
// no executions has an empty list: localiot has no thing registry to say it is unknown.
func (c *controlRequest) listExecutionsForThing(thing string) error {
	if err := checkThingName(thing); err != nil {
		return err
	}
	status, err := c.statusParam()
	if err != nil {
		return err
	}
	jobID := c.q.Get("jobId")
	if jobID != "" {
		if err := checkJobID(jobID); err != nil {
			return err
		}
	}
	execs, err := c.dp.srv.ListJobExecutionsForThing(c.r.Context(), thing)
	if err != nil {
		return c.jobsError(err, false)
	}
	none := c.q.Get("namespaceId") != ""
	execs = slices.DeleteFunc(execs, func(e jobstate.Execution) bool {
		return none || status != "" && e.Status != status || jobID != "" && e.JobID != jobID
	})
	type item struct {
		JobID               string            `json:"jobId"`
		JobExecutionSummary executionSummWire `json:"jobExecutionSummary"`
	}
	return writePage(c, "executionSummaries", execs, func(e jobstate.Execution) item {
		return item{e.JobID, executionSummary(e)}
	})
}

// describeExecution answers DescribeJobExecution (GET
// /things/{thingName}/jobs/{jobId}?executionNumber=): {execution}, the latest one, or
// the one with executionNumber: the latest or one a retry replaced.
func (c *controlRequest) describeExecution(id, thing string) error {
	if err := checkJobID(id); err != nil {
		return err
	}
	if err := checkThingName(thing); err != nil {
		return err
	}
	var (
		e   jobstate.Execution
		err error
	)
	if v := c.q.Get("executionNumber"); v != "" {
		n, perr := strconv.ParseInt(v, 10, 64)
		if perr != nil || n < 0 {
			return invalid("executionNumber %q: want a number", v)
		}
		e, err = c.dp.srv.DescribeJobExecutionNumber(c.r.Context(), id, thing, n)
	} else {
		e, err = c.dp.srv.DescribeJobExecution(c.r.Context(), id, thing)
	}
	if err != nil {
		return c.jobsError(err, false)
	}
	return c.write(map[string]any{"execution": c.execution(e)})
}

// cancelExecution answers CancelJobExecution (PUT
// /things/{thingName}/jobs/{jobId}/cancel?force=, body {expectedVersion,
// statusDetails}): 200 with no body.
func (c *controlRequest) cancelExecution(id, thing string) error {
	if err := checkJobID(id); err != nil {
		return err
	}
	if err := checkThingName(thing); err != nil {
		return err
	}
	force, err := c.boolParam("force")
	if err != nil {
		return err
	}
	var req struct {
		ExpectedVersion *int64            `json:"expectedVersion"`
		StatusDetails   map[string]string `json:"statusDetails"`
	}
	if err := c.decodeBody(&req); err != nil {
		return err
	}
	if req.StatusDetails != nil {
		if err := jobstate.ValidateStatusDetails(req.StatusDetails); err != nil {
			return invalid("%v", err)
		}
	}
	if _, err := c.dp.srv.cancelJobExecution(c.r.Context(), id, thing, force, req.ExpectedVersion, req.StatusDetails); err != nil {
		return c.jobsError(err, false)
	}
	return c.write(nil)
}
