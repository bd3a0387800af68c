package jobstate

import (
	"encoding/json"
	"maps"
	"slices"
	"time"
)

// Execution is one job execution on one thing, as the service keeps it. Times are
// kept to the nanosecond (for the timeouts) and shown in seconds on the wire.
type Execution struct {
	JobID           string            `json:"jobId"`
	ThingName       string            `json:"thingName"`
	ExecutionNumber int64             `json:"executionNumber"`
	Status          Status            `json:"status"`
	StatusDetails   map[string]string `json:"statusDetails,omitempty"`
	VersionNumber   int64             `json:"versionNumber"`
	QueuedAt        time.Time         `json:"queuedAt"`
	StartedAt       time.Time         `json:"startedAt,omitzero"`
	LastUpdatedAt   time.Time         `json:"lastUpdatedAt"`
	// Seq orders executions queued in the same instant: the job's creation order.
	Seq uint64 `json:"seq"`
	// StepDeadline is when the step timer ends the execution TIMED_OUT; zero when no
	// step timer runs.
	StepDeadline time.Time `json:"stepDeadline,omitzero"`
	// InProgressDeadline is when the job's in-progress timeout ends the execution
	// TIMED_OUT; zero when the job has none or the execution has not started.
	InProgressDeadline time.Time `json:"inProgressDeadline,omitzero"`
}

// NewExecution returns the execution a new job queues on thing at now: QUEUED,
// execution number 1, version 1.
func NewExecution(jobID, thing string, seq uint64, now time.Time) Execution {
	return Execution{
		JobID:           jobID,
		ThingName:       thing,
		ExecutionNumber: 1,
		Status:          Queued,
		VersionNumber:   1,
		QueuedAt:        now,
		LastUpdatedAt:   now,
		Seq:             seq,
	}
}

// Clone returns a copy of e that shares no map with it.
func (e Execution) Clone() Execution {
	e.StatusDetails = maps.Clone(e.StatusDetails)
	return e
}

// State returns e's ExecutionState.
func (e Execution) State() *ExecutionState {
	return &ExecutionState{Status: e.Status, StatusDetails: maps.Clone(e.StatusDetails), VersionNumber: e.VersionNumber}
}

// Summary returns e's ExecutionSummary.
func (e Execution) Summary() ExecutionSummary {
	return ExecutionSummary{
		JobID:           e.JobID,
		QueuedAt:        e.QueuedAt.Unix(),
		StartedAt:       unixOrZero(e.StartedAt),
		LastUpdatedAt:   e.LastUpdatedAt.Unix(),
		VersionNumber:   e.VersionNumber,
		ExecutionNumber: e.ExecutionNumber,
	}
}

// Data returns e's ExecutionData at now, with document as its jobDocument (nil for
// none).
func (e Execution) Data(document json.RawMessage, now time.Time) *ExecutionData {
	d := &ExecutionData{
		JobID:           e.JobID,
		ThingName:       e.ThingName,
		JobDocument:     document,
		Status:          e.Status,
		StatusDetails:   maps.Clone(e.StatusDetails),
		QueuedAt:        e.QueuedAt.Unix(),
		StartedAt:       unixOrZero(e.StartedAt),
		LastUpdatedAt:   e.LastUpdatedAt.Unix(),
		VersionNumber:   e.VersionNumber,
		ExecutionNumber: e.ExecutionNumber,
	}
	if dl := e.Deadline(); !dl.IsZero() && e.Status == InProgress {
		d.ApproximateSecondsBeforeTimedOut = max(int64(dl.Sub(now).Round(time.Second)/time.Second), 0)
	}
	return d
}

// Deadline returns when e times out if nothing changes: the earlier of its step and
// in-progress deadlines, or zero when neither is set or e is not IN_PROGRESS.
func (e Execution) Deadline() time.Time {
	if e.Status != InProgress {
		return time.Time{}
	}
	switch {
	case e.StepDeadline.IsZero():
		return e.InProgressDeadline
	case e.InProgressDeadline.IsZero(), e.StepDeadline.Before(e.InProgressDeadline):
		return e.StepDeadline
	}
	return e.InProgressDeadline
}

// Expire returns e TIMED_OUT if its deadline has passed at now, and whether it did.
// The version is bumped and the timers cleared; the status details are kept.
func Expire(e Execution, now time.Time) (Execution, bool) {
	dl := e.Deadline()
	if dl.IsZero() || now.Before(dl) {
		return e, false
	}
	return e.finish(TimedOut, now), true
}

// Cancel returns e CANCELED, and whether it changed: a QUEUED execution always, an
// IN_PROGRESS one only with force, a terminal one never.
func Cancel(e Execution, force bool, now time.Time) (Execution, bool) {
	if e.Status == Queued || e.Status == InProgress && force {
		return e.finish(Canceled, now), true
	}
	return e, false
}

// finish moves e to a status set by the service.
func (e Execution) finish(s Status, now time.Time) Execution {
	e = e.Clone()
	e.Status = s
	e.VersionNumber++
	e.LastUpdatedAt = now
	e.StepDeadline, e.InProgressDeadline = time.Time{}, time.Time{}
	return e
}

// start moves a QUEUED or IN_PROGRESS e to IN_PROGRESS at now, as a device's update or
// start-next does: the in-progress timer starts with the first start, the step timer
// is set (minutes > 0), cleared (-1) or left (nil), and details replace the old ones
// when given.
func (e Execution) start(details map[string]string, stepMinutes *int64, inProgressTimeout time.Duration, now time.Time) Execution {
	e = e.Clone()
	if e.Status == Queued {
		e.StartedAt = now
		if inProgressTimeout > 0 {
			e.InProgressDeadline = now.Add(inProgressTimeout)
		}
	}
	e.Status = InProgress
	if details != nil {
		e.StatusDetails = maps.Clone(details)
	}
	if stepMinutes != nil {
		if *stepMinutes == StepTimeoutCancel {
			e.StepDeadline = time.Time{}
		} else {
			e.StepDeadline = now.Add(time.Duration(*stepMinutes) * time.Minute)
		}
	}
	e.VersionNumber++
	e.LastUpdatedAt = now
	return e
}

// SortQueue sorts a thing's executions into the order the service hands them out:
// IN_PROGRESS before QUEUED, then by when they were queued (and creation order), as
// AWS sorts a ListNotification. Terminal executions sort last.
func SortQueue(execs []Execution) {
	rank := func(s Status) int {
		switch s {
		case InProgress:
			return 0
		case Queued:
			return 1
		}
		return 2
	}
	slices.SortStableFunc(execs, func(a, b Execution) int {
		if r := rank(a.Status) - rank(b.Status); r != 0 {
			return r
		}
		if c := a.QueuedAt.Compare(b.QueuedAt); c != 0 {
			return c
		}
		switch {
		case a.Seq < b.Seq:
			return -1
		case a.Seq > b.Seq:
			return 1
		}
		return 0
	})
}

// PendingQueue returns the pending executions among execs in queue order (SortQueue).
func PendingQueue(execs []Execution) []Execution {
	var q []Execution
	for _, e := range execs {
		if e.Status.Pending() {
			q = append(q, e)
		}
	}
	SortQueue(q)
	return q
}

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}
