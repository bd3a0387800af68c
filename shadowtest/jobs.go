package shadowtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/onsi/gomega/format"
	"github.com/onsi/gomega/types"

	"github.com/shadowsync/shadowsync/jobstate"
	"github.com/shadowsync/shadowsync/localiot"
)

// ErrNoJobsService is returned by the jobs helpers of an Env running on an external
// broker (Options.Broker): only the embedded localiot has a Jobs service.
var ErrNoJobsService = errors.New("shadowtest: no Jobs service: the Env runs on an external broker")

// CreateJob creates a job on the Env's localiot, as an operator would with AWS IoT's
// CreateJob: document (a struct, a map or json.RawMessage, marshalled to a JSON
// object) queued on each of things, which hear of it on notify and notify-next.
func (e *Env) CreateJob(ctx context.Context, jobID string, document any, things ...string) (localiot.Job, error) {
	srv := e.Server()
	if srv == nil {
		return localiot.Job{}, ErrNoJobsService
	}
	raw, ok := document.(json.RawMessage)
	if !ok {
		var err error
		if raw, err = json.Marshal(document); err != nil {
			return localiot.Job{}, fmt.Errorf("shadowtest: job document: %w", err)
		}
	}
	return srv.CreateJob(ctx, localiot.JobSpec{JobID: jobID, Targets: things, Document: raw})
}

// CancelJob cancels a job as AWS IoT's CancelJob does; with force its IN_PROGRESS
// executions end CANCELED too.
func (e *Env) CancelJob(ctx context.Context, jobID string, force bool) (localiot.Job, error) {
	srv := e.Server()
	if srv == nil {
		return localiot.Job{}, ErrNoJobsService
	}
	return srv.CancelJob(ctx, jobID, localiot.CancelJobOptions{Force: force})
}

// JobExecution returns thing's execution of jobID as the Jobs service holds it, in
// any status: the value HaveJobStatus and HaveJobStatusDetail check, e.g.
//
//	Eventually(env.JobExecution).WithArguments("fw-1", "dev-1").Should(shadowtest.HaveJobStatus(jobstate.Succeeded))
func (e *Env) JobExecution(jobID, thing string) (jobstate.Execution, error) {
	srv := e.Server()
	if srv == nil {
		return jobstate.Execution{}, ErrNoJobsService
	}
	return srv.DescribeJobExecution(context.Background(), jobID, thing)
}

// HaveJobStatus succeeds for a job execution (jobstate.Execution or a pointer to
// one, as Env.JobExecution returns it) in one of statuses.
func HaveJobStatus(statuses ...jobstate.Status) types.GomegaMatcher {
	return &jobStatusMatcher{want: statuses}
}

// HaveJobStatusDetail succeeds for a job execution whose statusDetails hold key with
// a value matching value: a string (equal) or a Gomega matcher such as
// ContainSubstring("/channel").
func HaveJobStatusDetail(key string, value any) types.GomegaMatcher {
	return &jobDetailMatcher{key: key, value: value}
}

func toExecution(actual any) (jobstate.Execution, error) {
	switch x := actual.(type) {
	case jobstate.Execution:
		return x, nil
	case *jobstate.Execution:
		if x != nil {
			return *x, nil
		}
	}
	return jobstate.Execution{}, fmt.Errorf("shadowtest: want a jobstate.Execution, got %T", actual)
}

func describeExecution(x jobstate.Execution) string {
	keys := slices.Sorted(maps.Keys(x.StatusDetails))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%q", k, x.StatusDetails[k])
	}
	return fmt.Sprintf("execution of %s on %s: %s, version %d, statusDetails {%s}", x.JobID, x.ThingName, x.Status, x.VersionNumber, strings.Join(parts, ", "))
}

type jobStatusMatcher struct {
	want []jobstate.Status
	got  jobstate.Execution
}

func (m *jobStatusMatcher) Match(actual any) (bool, error) {
	x, err := toExecution(actual)
	if err != nil {
		return false, err
	}
	m.got = x
	return slices.Contains(m.want, x.Status), nil
}

func (m *jobStatusMatcher) FailureMessage(any) string {
	return fmt.Sprintf("Expected the %s\nto have status %v", describeExecution(m.got), m.want)
}

func (m *jobStatusMatcher) NegatedFailureMessage(any) string {
	return fmt.Sprintf("Expected the %s\nnot to have status %v", describeExecution(m.got), m.want)
}

type jobDetailMatcher struct {
	key   string
	value any
	got   jobstate.Execution
}

func (m *jobDetailMatcher) Match(actual any) (bool, error) {
	x, err := toExecution(actual)
	if err != nil {
		return false, err
	}
	m.got = x
	v, ok := x.StatusDetails[m.key]
	if !ok {
		return false, nil
	}
	if sub, isMatcher := m.value.(types.GomegaMatcher); isMatcher {
		return sub.Match(v)
	}
	return v == fmt.Sprint(m.value), nil
}

func (m *jobDetailMatcher) FailureMessage(any) string {
	return fmt.Sprintf("Expected the %s\nto have statusDetails %q %s", describeExecution(m.got), m.key, format.Object(m.value, 1))
}

func (m *jobDetailMatcher) NegatedFailureMessage(any) string {
	return fmt.Sprintf("Expected the %s\nnot to have statusDetails %q %s", describeExecution(m.got), m.key, format.Object(m.value, 1))
}
