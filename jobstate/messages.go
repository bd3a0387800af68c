package jobstate

import "encoding/json"

// ErrorCode is the code of a rejection on a .../rejected topic.
type ErrorCode string

// The error codes of the jobs MQTT API.
const (
	// CodeInvalidTopic: the request was sent to a topic in the jobs namespace that maps
	// to no operation.
	CodeInvalidTopic ErrorCode = "InvalidTopic"
	// CodeInvalidJSON: the payload is not valid UTF-8 JSON.
	CodeInvalidJSON ErrorCode = "InvalidJson"
	// CodeInvalidRequest: the payload is JSON but its contents are invalid.
	CodeInvalidRequest ErrorCode = "InvalidRequest"
	// CodeInvalidStateTransition: the update would move the execution to a status its
	// current status does not allow. The rejection carries executionState.
	CodeInvalidStateTransition ErrorCode = "InvalidStateTransition"
	// CodeResourceNotFound: the execution named by the topic (and executionNumber)
	// does not exist.
	CodeResourceNotFound ErrorCode = "ResourceNotFound"
	// CodeVersionMismatch: expectedVersion is not the execution's version. The
	// rejection carries executionState.
	CodeVersionMismatch ErrorCode = "VersionMismatch"
	// CodeInternalError: the service failed, e.g. its store could not save.
	CodeInternalError ErrorCode = "InternalError"
	// CodeRequestThrottled: the request was throttled.
	CodeRequestThrottled ErrorCode = "RequestThrottled"
	// CodeTerminalStateReached: a describe request named an execution in a terminal
	// status.
	CodeTerminalStateReached ErrorCode = "TerminalStateReached"
)

// ErrorResponse is the payload of every .../rejected reply.
type ErrorResponse struct {
	Code           ErrorCode       `json:"code"`
	Message        string          `json:"message"`
	ClientToken    string          `json:"clientToken,omitempty"`
	Timestamp      int64           `json:"timestamp"`
	ExecutionState *ExecutionState `json:"executionState,omitempty"`
}

// Error makes a rejection usable as a Go error.
func (e *ErrorResponse) Error() string { return string(e.Code) + ": " + e.Message }

// ExecutionState is the part of an execution an update reply and some rejections
// carry.
type ExecutionState struct {
	Status        Status            `json:"status"`
	StatusDetails map[string]string `json:"statusDetails,omitempty"`
	VersionNumber int64             `json:"versionNumber"`
}

// ExecutionSummary is one entry of a pending list (get/accepted and notify). Times
// are seconds since the epoch; startedAt is absent until the execution starts.
type ExecutionSummary struct {
	JobID           string `json:"jobId"`
	QueuedAt        int64  `json:"queuedAt"`
	StartedAt       int64  `json:"startedAt,omitempty"`
	LastUpdatedAt   int64  `json:"lastUpdatedAt"`
	VersionNumber   int64  `json:"versionNumber"`
	ExecutionNumber int64  `json:"executionNumber"`
}

// ExecutionData is a whole execution as start-next, describe and notify-next carry
// it. JobDocument is the job's document, a JSON object, when the request asked for it.
// ApproximateSecondsBeforeTimedOut is how long until the earlier of the step and
// in-progress timeouts, absent when no timer runs.
type ExecutionData struct {
	JobID                            string            `json:"jobId"`
	ThingName                        string            `json:"thingName"`
	JobDocument                      json.RawMessage   `json:"jobDocument,omitempty"`
	Status                           Status            `json:"status"`
	StatusDetails                    map[string]string `json:"statusDetails,omitempty"`
	QueuedAt                         int64             `json:"queuedAt"`
	StartedAt                        int64             `json:"startedAt,omitempty"`
	LastUpdatedAt                    int64             `json:"lastUpdatedAt"`
	VersionNumber                    int64             `json:"versionNumber"`
	ExecutionNumber                  int64             `json:"executionNumber"`
	ApproximateSecondsBeforeTimedOut int64             `json:"approximateSecondsBeforeTimedOut,omitempty"`
}

// GetPendingRequest is the payload of $aws/things/{thing}/jobs/get.
type GetPendingRequest struct {
	ClientToken string `json:"clientToken,omitempty"`
}

// GetPendingAccepted is the reply on get/accepted: the thing's pending executions,
// IN_PROGRESS and QUEUED apart, each in the order they were queued.
type GetPendingAccepted struct {
	InProgressJobs []ExecutionSummary `json:"inProgressJobs"`
	QueuedJobs     []ExecutionSummary `json:"queuedJobs"`
	Timestamp      int64              `json:"timestamp"`
	ClientToken    string             `json:"clientToken,omitempty"`
}

// StartNextRequest is the payload of $aws/things/{thing}/jobs/start-next.
// StepTimeoutInMinutes is nil when absent.
type StartNextRequest struct {
	StatusDetails        map[string]string `json:"statusDetails,omitempty"`
	StepTimeoutInMinutes *int64            `json:"stepTimeoutInMinutes,omitempty"`
	ClientToken          string            `json:"clientToken,omitempty"`
}

// StartNextAccepted is the reply on start-next/accepted and, for jobId $next, on
// get/accepted. Execution is nil when the thing has no pending execution.
type StartNextAccepted struct {
	Execution   *ExecutionData `json:"execution,omitempty"`
	Timestamp   int64          `json:"timestamp"`
	ClientToken string         `json:"clientToken,omitempty"`
}

// DescribeRequest is the payload of $aws/things/{thing}/jobs/{jobId}/get.
// IncludeJobDocument nil means true; ExecutionNumber nil means the latest execution.
type DescribeRequest struct {
	ExecutionNumber    *int64 `json:"executionNumber,omitempty"`
	IncludeJobDocument *bool  `json:"includeJobDocument,omitempty"`
	ClientToken        string `json:"clientToken,omitempty"`
}

// DescribeAccepted is the reply on {jobId}/get/accepted.
type DescribeAccepted struct {
	Execution   *ExecutionData `json:"execution,omitempty"`
	Timestamp   int64          `json:"timestamp"`
	ClientToken string         `json:"clientToken,omitempty"`
}

// UpdateRequest is the payload of $aws/things/{thing}/jobs/{jobId}/update. Optional
// numbers are nil when absent.
type UpdateRequest struct {
	Status                   Status            `json:"status"`
	StatusDetails            map[string]string `json:"statusDetails,omitempty"`
	ExpectedVersion          *int64            `json:"expectedVersion,omitempty"`
	ExecutionNumber          *int64            `json:"executionNumber,omitempty"`
	IncludeJobExecutionState bool              `json:"includeJobExecutionState,omitempty"`
	IncludeJobDocument       bool              `json:"includeJobDocument,omitempty"`
	StepTimeoutInMinutes     *int64            `json:"stepTimeoutInMinutes,omitempty"`
	ClientToken              string            `json:"clientToken,omitempty"`
}

// UpdateAccepted is the reply on {jobId}/update/accepted. ExecutionState and
// JobDocument are present only when the request asked for them.
type UpdateAccepted struct {
	ExecutionState *ExecutionState `json:"executionState,omitempty"`
	JobDocument    json.RawMessage `json:"jobDocument,omitempty"`
	Timestamp      int64           `json:"timestamp"`
	ClientToken    string          `json:"clientToken,omitempty"`
}

// ListNotification is the payload of $aws/things/{thing}/jobs/notify: the thing's
// pending executions by status, IN_PROGRESS ones first, each status's list in queue
// order, at most MaxNotifyExecutions in all. Jobs is {} when nothing is pending.
type ListNotification struct {
	Timestamp int64                         `json:"timestamp"`
	Jobs      map[Status][]ExecutionSummary `json:"jobs"`
}

// NextNotification is the payload of $aws/things/{thing}/jobs/notify-next: the
// execution now first in the thing's queue, with its job document, or none (only the
// timestamp) when nothing is pending any more.
type NextNotification struct {
	Timestamp int64          `json:"timestamp"`
	Execution *ExecutionData `json:"execution,omitempty"`
}
