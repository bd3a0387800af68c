package jobstate

import (
	"fmt"
	"time"
)

// RetryFailureType is the kind of failure a RetryCriteria counts: FAILED, TIMED_OUT or
// ALL (both).
type RetryFailureType string

// The failure types of a retry criterion.
const (
	RetryFailed   RetryFailureType = "FAILED"
	RetryTimedOut RetryFailureType = "TIMED_OUT"
	RetryAll      RetryFailureType = "ALL"
)

// MaxRetries is the most retries a RetryCriteria allows.
const MaxRetries = 10

// RetryCriteria is one entry of a job's retry configuration: how many times an
// execution that ends with a failure of FailureType is queued again as a new execution.
type RetryCriteria struct {
	FailureType     RetryFailureType `json:"failureType"`
	NumberOfRetries int              `json:"numberOfRetries"`
}

// RetryConfig is a job's jobExecutionsRetryConfig.
type RetryConfig struct {
	CriteriaList []RetryCriteria `json:"criteriaList"`
}

// ValidateRetryConfig returns an error unless c follows AWS's rules: one or two
// criteria, each of failure type FAILED, TIMED_OUT or ALL (no type twice) with 0 to 10
// retries.
func ValidateRetryConfig(c RetryConfig) error {
	if n := len(c.CriteriaList); n < 1 || n > 2 {
		return fmt.Errorf("jobExecutionsRetryConfig: criteriaList has %d entries, want 1 or 2", n)
	}
	seen := map[RetryFailureType]bool{}
	for _, cr := range c.CriteriaList {
		switch cr.FailureType {
		case RetryFailed, RetryTimedOut, RetryAll:
		default:
			return fmt.Errorf("jobExecutionsRetryConfig: failureType %q: want FAILED, TIMED_OUT or ALL", cr.FailureType)
		}
		if seen[cr.FailureType] {
			return fmt.Errorf("jobExecutionsRetryConfig: failureType %s given twice", cr.FailureType)
		}
		seen[cr.FailureType] = true
		if cr.NumberOfRetries < 0 || cr.NumberOfRetries > MaxRetries {
			return fmt.Errorf("jobExecutionsRetryConfig: numberOfRetries %d for %s: want 0 to %d", cr.NumberOfRetries, cr.FailureType, MaxRetries)
		}
	}
	return nil
}

// Allows reports whether an execution that has just ended with status ended gets
// another attempt, given the statuses the thing's earlier attempts at the job ended
// with (each of which was retried). Only FAILED and TIMED_OUT are retried. Every
// criterion that covers the failure must allow one more: the one of its own type
// counts the earlier attempts that ended the same way, ALL counts every earlier
// attempt. A failure no criterion covers is not retried.
func (c RetryConfig) Allows(ended Status, earlier []Status) bool {
	var own RetryFailureType
	switch ended {
	case Failed:
		own = RetryFailed
	case TimedOut:
		own = RetryTimedOut
	default:
		return false
	}
	covered := false
	for _, cr := range c.CriteriaList {
		used := 0
		switch cr.FailureType {
		case own:
			for _, s := range earlier {
				if s == ended {
					used++
				}
			}
		case RetryAll:
			used = len(earlier)
		default:
			continue
		}
		if used >= cr.NumberOfRetries {
			return false
		}
		covered = true
	}
	return covered
}

// Retry returns the execution that retries e, which has ended: QUEUED at now with the
// next execution number, its version starting again at 1, no status details, and seq
// as its place among executions queued in the same instant.
func Retry(e Execution, seq uint64, now time.Time) Execution {
	r := NewExecution(e.JobID, e.ThingName, seq, now)
	r.ExecutionNumber = e.ExecutionNumber + 1
	return r
}
