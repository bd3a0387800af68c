package jobstate

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// The messages of the rejections localiot makes. AWS documents the codes, not the
// messages; these say what was wrong.
const (
	MsgInvalidJSON            = "Invalid JSON: the payload is not UTF-8 encoded JSON"
	MsgInvalidTopic           = "Invalid topic: no jobs operation has this topic"
	MsgNotFound               = "Job execution not found"
	MsgVersionMismatch        = "expectedVersion does not match the job execution's version"
	MsgInternal               = "Internal service failure"
	MsgThrottled              = "Request throttled"
	MsgTerminalStateReached   = "The job execution is in a terminal state"
	MsgInvalidStateTransition = "The job execution's status does not allow this update"
)

// JobInfo is what the rules need to know of the job an execution belongs to.
type JobInfo struct {
	// Document is the job document, a JSON object.
	Document json.RawMessage
	// InProgressTimeout is the job's in-progress timeout; zero for none.
	InProgressTimeout time.Duration
}

// ThingView is one thing's executions, as the rules see them to answer a request: the
// latest execution of each job that targets the thing, in any order, and the jobs
// they belong to by job ID.
type ThingView struct {
	Thing      string
	Executions []Execution
	Jobs       map[string]JobInfo
}

// Outcome is the result of one request: the reply to publish on Topic, and the
// execution to store when the request changed one (nil when it changed nothing).
type Outcome struct {
	// Topic is the reply's topic: the request topic plus /accepted or /rejected.
	Topic string
	// Reply is the payload: one of the *...Accepted types, or *ErrorResponse.
	Reply any
	// Rejected is Reply when it is a rejection.
	Rejected *ErrorResponse
	// Changed is the changed execution, to be stored before the reply is published.
	Changed *Execution
}

// Handle answers one request published on a topic ParseTopic returned t for (Kind
// KindRequest or KindInvalid), with payload, at now. It changes nothing itself.
func Handle(v ThingView, t Topic, payload []byte, now time.Time) Outcome {
	ts := now.Unix()
	reject := func(r *ErrorResponse) Outcome {
		return Outcome{Topic: t.Name + "/" + string(KindRejected), Reply: r, Rejected: r}
	}
	accept := func(reply any, changed *Execution) Outcome {
		return Outcome{Topic: t.Name + "/" + string(KindAccepted), Reply: reply, Changed: changed}
	}
	if t.Kind != KindRequest {
		return reject(&ErrorResponse{Code: CodeInvalidTopic, Message: MsgInvalidTopic, ClientToken: tokenOf(payload), Timestamp: ts})
	}
	invalid := func(token string, err error) Outcome {
		return reject(&ErrorResponse{Code: CodeInvalidRequest, Message: "Invalid request: " + err.Error(), ClientToken: token, Timestamp: ts})
	}
	switch t.Op {
	case OpGetPending:
		var req GetPendingRequest
		if rej := decode(payload, &req, ts); rej != nil {
			return reject(rej)
		}
		return accept(GetPending(v.Executions, req.ClientToken, now), nil)

	case OpStartNext:
		var req StartNextRequest
		if rej := decode(payload, &req, ts); rej != nil {
			return reject(rej)
		}
		if err := ValidateStatusDetails(req.StatusDetails); err != nil {
			return invalid(req.ClientToken, err)
		}
		if err := ValidateStepTimeout(req.StepTimeoutInMinutes); err != nil {
			return invalid(req.ClientToken, err)
		}
		reply := &StartNextAccepted{Timestamp: ts, ClientToken: req.ClientToken}
		q := PendingQueue(v.Executions)
		if len(q) == 0 {
			return accept(reply, nil)
		}
		e := q[0]
		job := v.Jobs[e.JobID]
		if e.Status == InProgress {
			// Already started: returned as it is (docs/jobs.md, decisions).
			reply.Execution = e.Data(job.Document, now)
			return accept(reply, nil)
		}
		e = e.start(req.StatusDetails, req.StepTimeoutInMinutes, job.InProgressTimeout, now)
		reply.Execution = e.Data(job.Document, now)
		return accept(reply, &e)

	case OpDescribe:
		var req DescribeRequest
		if rej := decode(payload, &req, ts); rej != nil {
			return reject(rej)
		}
		reply := &DescribeAccepted{Timestamp: ts, ClientToken: req.ClientToken}
		var e Execution
		if t.JobID == NextJobID {
			q := PendingQueue(v.Executions)
			if len(q) == 0 {
				return accept(reply, nil)
			}
			e = q[0]
		} else {
			var found bool
			e, found = find(v.Executions, t.JobID, req.ExecutionNumber)
			if !found {
				return reject(&ErrorResponse{Code: CodeResourceNotFound, Message: MsgNotFound, ClientToken: req.ClientToken, Timestamp: ts})
			}
			if e.Status.Terminal() {
				return reject(&ErrorResponse{Code: CodeTerminalStateReached, Message: MsgTerminalStateReached, ClientToken: req.ClientToken, Timestamp: ts})
			}
		}
		var doc json.RawMessage
		if req.IncludeJobDocument == nil || *req.IncludeJobDocument {
			doc = v.Jobs[e.JobID].Document
		}
		reply.Execution = e.Data(doc, now)
		return accept(reply, nil)

	case OpUpdate:
		var req UpdateRequest
		if rej := decode(payload, &req, ts); rej != nil {
			return reject(rej)
		}
		if !req.Status.Valid() {
			return invalid(req.ClientToken, fmt.Errorf("status %q: want IN_PROGRESS, SUCCEEDED, FAILED or REJECTED", req.Status))
		}
		if err := ValidateStatusDetails(req.StatusDetails); err != nil {
			return invalid(req.ClientToken, err)
		}
		if err := ValidateStepTimeout(req.StepTimeoutInMinutes); err != nil {
			return invalid(req.ClientToken, err)
		}
		e, found := find(v.Executions, t.JobID, req.ExecutionNumber)
		if !found {
			return reject(&ErrorResponse{Code: CodeResourceNotFound, Message: MsgNotFound, ClientToken: req.ClientToken, Timestamp: ts})
		}
		if req.ExpectedVersion != nil && *req.ExpectedVersion != e.VersionNumber {
			return reject(&ErrorResponse{Code: CodeVersionMismatch, Message: MsgVersionMismatch, ClientToken: req.ClientToken, Timestamp: ts, ExecutionState: e.State()})
		}
		if !CanTransition(e.Status, req.Status) {
			msg := fmt.Sprintf("%s: %s to %s", MsgInvalidStateTransition, e.Status, req.Status)
			return reject(&ErrorResponse{Code: CodeInvalidStateTransition, Message: msg, ClientToken: req.ClientToken, Timestamp: ts, ExecutionState: e.State()})
		}
		job := v.Jobs[e.JobID]
		if req.Status == InProgress {
			e = e.start(req.StatusDetails, req.StepTimeoutInMinutes, job.InProgressTimeout, now)
		} else {
			e = e.finish(req.Status, now)
			if req.StatusDetails != nil {
				e.StatusDetails = req.StatusDetails
			}
		}
		reply := &UpdateAccepted{Timestamp: ts, ClientToken: req.ClientToken}
		if req.IncludeJobExecutionState {
			reply.ExecutionState = e.State()
		}
		if req.IncludeJobDocument {
			reply.JobDocument = job.Document
		}
		return accept(reply, &e)
	}
	return reject(&ErrorResponse{Code: CodeInvalidTopic, Message: MsgInvalidTopic, ClientToken: tokenOf(payload), Timestamp: ts})
}

// find returns the execution of jobID among execs, which must have the execution
// number n when n is not nil.
func find(execs []Execution, jobID string, n *int64) (Execution, bool) {
	for _, e := range execs {
		if e.JobID == jobID && (n == nil || *n == e.ExecutionNumber) {
			return e, true
		}
	}
	return Execution{}, false
}

// GetPending returns the get/accepted reply for a thing's executions: the pending ones,
// at most MaxPendingListed, IN_PROGRESS ones first.
func GetPending(execs []Execution, token string, now time.Time) *GetPendingAccepted {
	r := &GetPendingAccepted{InProgressJobs: []ExecutionSummary{}, QueuedJobs: []ExecutionSummary{}, Timestamp: now.Unix(), ClientToken: token}
	for i, e := range PendingQueue(execs) {
		if i == MaxPendingListed {
			break
		}
		if e.Status == InProgress {
			r.InProgressJobs = append(r.InProgressJobs, e.Summary())
		} else {
			r.QueuedJobs = append(r.QueuedJobs, e.Summary())
		}
	}
	return r
}

// List returns the ListNotification for a thing's executions at now.
func List(execs []Execution, now time.Time) *ListNotification {
	n := &ListNotification{Timestamp: now.Unix(), Jobs: map[Status][]ExecutionSummary{}}
	for i, e := range PendingQueue(execs) {
		if i == MaxPendingListed {
			break
		}
		n.Jobs[e.Status] = append(n.Jobs[e.Status], e.Summary())
	}
	return n
}

// Next returns the NextNotification for a thing's executions at now, with the job
// document of the first pending one from jobs.
func Next(execs []Execution, jobs map[string]JobInfo, now time.Time) *NextNotification {
	n := &NextNotification{Timestamp: now.Unix()}
	if q := PendingQueue(execs); len(q) > 0 {
		n.Execution = q[0].Data(jobs[q[0].JobID].Document, now)
	}
	return n
}

// Changes reports which notifications a change of a thing's executions from before to
// after calls for: notify when the pending list changed (an execution joined or left
// it, or changed status within it), notify-next when the first pending execution is
// another one (or there is none any more, or one again).
func Changes(before, after []Execution) (notify, notifyNext bool) {
	type entry struct {
		job    string
		number int64
		status Status
	}
	list := func(execs []Execution) []entry {
		var l []entry
		for _, e := range PendingQueue(execs) {
			l = append(l, entry{e.JobID, e.ExecutionNumber, e.Status})
		}
		return l
	}
	b, a := list(before), list(after)
	notify = !slices.Equal(b, a)
	switch {
	case len(b) == 0 && len(a) == 0:
	case len(b) == 0 || len(a) == 0:
		notifyNext = true
	default:
		notifyNext = b[0].job != a[0].job || b[0].number != a[0].number
	}
	return notify, notifyNext
}
