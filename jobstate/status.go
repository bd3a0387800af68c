package jobstate

// Status is the status of a job execution.
type Status string

// The statuses of a job execution. QUEUED and IN_PROGRESS are pending; the others are
// terminal: once an execution reaches one, it never changes again.
const (
	Queued     Status = "QUEUED"
	InProgress Status = "IN_PROGRESS"
	Succeeded  Status = "SUCCEEDED"
	Failed     Status = "FAILED"
	TimedOut   Status = "TIMED_OUT"
	Rejected   Status = "REJECTED"
	Removed    Status = "REMOVED"
	Canceled   Status = "CANCELED"
)

// Valid reports whether s is one of AWS's execution statuses.
func (s Status) Valid() bool {
	switch s {
	case Queued, InProgress, Succeeded, Failed, TimedOut, Rejected, Removed, Canceled:
		return true
	}
	return false
}

// Terminal reports whether s is a final status: SUCCEEDED, FAILED, TIMED_OUT,
// REJECTED, REMOVED or CANCELED.
func (s Status) Terminal() bool {
	return s.Valid() && s != Queued && s != InProgress
}

// Pending reports whether s is QUEUED or IN_PROGRESS, the statuses of the executions a
// device still has to carry out.
func (s Status) Pending() bool { return s == Queued || s == InProgress }

// DeviceSettable reports whether a device may set s in an update: IN_PROGRESS,
// SUCCEEDED, FAILED or REJECTED. QUEUED is where every execution starts, and
// TIMED_OUT, CANCELED and REMOVED are set by the service only.
func (s Status) DeviceSettable() bool {
	switch s {
	case InProgress, Succeeded, Failed, Rejected:
		return true
	}
	return false
}

// CanTransition reports whether a device's update may move an execution from status
// from to status to: from a pending status to any status a device may set (including
// IN_PROGRESS to IN_PROGRESS, which updates the details or the step timer). Nothing
// leaves a terminal status.
func CanTransition(from, to Status) bool {
	return from.Pending() && to.DeviceSettable()
}

// JobStatus is the status of a job as a whole, across its executions.
type JobStatus string

// The statuses of a job localiot uses: a job is IN_PROGRESS from its creation until
// every execution is terminal (COMPLETED) or it is canceled (CANCELED).
const (
	JobInProgress JobStatus = "IN_PROGRESS"
	JobCanceled   JobStatus = "CANCELED"
	JobCompleted  JobStatus = "COMPLETED"
)
