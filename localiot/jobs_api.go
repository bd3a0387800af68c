package localiot

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/shadowsync/shadowsync/jobstate"
)

// JobSpec describes a job to create: what AWS IoT's CreateJob takes, for things named
// directly.
type JobSpec struct {
	// JobID names the job: 1 to 64 of a-z, A-Z, 0-9, '_' and '-', unique among the
	// server's jobs. Required.
	JobID string
	// Targets are the things to run the job on: valid thing names, no duplicates, at
	// least one. Each gets one execution, QUEUED behind the thing's earlier jobs.
	Targets []string
	// Document is the job document: a JSON object of at most 32 KiB. Required.
	Document json.RawMessage
	// InProgressTimeout is AWS's timeoutConfig.inProgressTimeoutInMinutes: how long an
	// execution may stay IN_PROGRESS before the service sets it TIMED_OUT. Zero means
	// none; otherwise whole minutes from 1 to 10080.
	InProgressTimeout time.Duration
	// Description is free text kept with the job.
	Description string
	// RetryConfig is AWS's jobExecutionsRetryConfig: when an execution ends FAILED or
	// TIMED_OUT and the criteria allow another attempt, the thing gets a new execution
	// of the job with the next execution number (jobstate.RetryConfig.Allows). Nil for
	// no retries.
	RetryConfig *jobstate.RetryConfig
}

// CancelJobOptions are CancelJob's optional settings.
type CancelJobOptions struct {
	// Force cancels IN_PROGRESS executions too; without it they run to their end.
	Force bool
	// ReasonCode and Comment are kept with the job.
	ReasonCode string
	Comment    string
}

// CreateJob creates a job and queues one execution of it on each target, publishing
// notify (and notify-next, for a thing whose queue was empty) to the targets. It
// returns the job as stored. Errors wrap ErrInvalidJob or ErrJobExists.
func (s *Server) CreateJob(ctx context.Context, spec JobSpec) (Job, error) {
	if err := ctx.Err(); err != nil {
		return Job{}, err
	}
	if err := spec.validate(); err != nil {
		return Job{}, err
	}
	j := s.jobs
	j.mu.Lock()
	defer j.mu.Unlock()
	if _, ok := j.jobs[spec.JobID]; ok {
		return Job{}, fmt.Errorf("%w: %s", ErrJobExists, spec.JobID)
	}
	now := j.clock.Now()
	j.seq++
	job := &Job{
		JobID:             spec.JobID,
		Document:          slices.Clone(spec.Document),
		Targets:           slices.Clone(spec.Targets),
		Status:            jobstate.JobInProgress,
		InProgressTimeout: spec.InProgressTimeout,
		Description:       spec.Description,
		RetryConfig:       spec.RetryConfig,
		CreatedAt:         now,
		LastUpdatedAt:     now,
		Seq:               j.seq,
	}
	for _, t := range spec.Targets {
		job.Executions = append(job.Executions, jobstate.NewExecution(spec.JobID, t, j.seq, now))
	}
	*job = job.clone() // shares nothing with spec
	events, err := j.replaceLocked(nil, job, now)
	if err != nil {
		return Job{}, err
	}
	j.sendLocked(events)
	return job.clone(), nil
}

func (spec JobSpec) validate() error {
	if err := jobstate.ValidateJobID(spec.JobID); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidJob, err)
	}
	if err := jobstate.ValidateDocument(spec.Document); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidJob, err)
	}
	if len(spec.Targets) == 0 {
		return fmt.Errorf("%w: no targets", ErrInvalidJob)
	}
	seen := map[string]bool{}
	for _, t := range spec.Targets {
		if err := jobstate.ValidateThingName(t); err != nil {
			return fmt.Errorf("%w: target: %w", ErrInvalidJob, err)
		}
		if seen[t] {
			return fmt.Errorf("%w: target %s given twice", ErrInvalidJob, t)
		}
		seen[t] = true
	}
	if d := spec.InProgressTimeout; d != 0 && (d%time.Minute != 0 || d < jobstate.MinStepTimeoutMinutes*time.Minute || d > jobstate.MaxStepTimeoutMinutes*time.Minute) {
		return fmt.Errorf("%w: InProgressTimeout %v: want whole minutes from %d to %d", ErrInvalidJob, d, jobstate.MinStepTimeoutMinutes, jobstate.MaxStepTimeoutMinutes)
	}
	if spec.RetryConfig != nil {
		if err := jobstate.ValidateRetryConfig(*spec.RetryConfig); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidJob, err)
		}
	}
	return nil
}

// CancelJob cancels a job: its QUEUED executions become CANCELED, and with
// opts.Force its IN_PROGRESS ones too; the others are left to finish. The job becomes
// CANCELED. Canceling a CANCELED job again is allowed (with Force it cancels what still
// runs); a COMPLETED one cannot be canceled. Errors wrap ErrJobNotFound or ErrJobState.
func (s *Server) CancelJob(ctx context.Context, jobID string, opts CancelJobOptions) (Job, error) {
	if err := ctx.Err(); err != nil {
		return Job{}, err
	}
	j := s.jobs
	j.mu.Lock()
	defer j.mu.Unlock()
	old, ok := j.jobs[jobID]
	if !ok {
		return Job{}, fmt.Errorf("%w: %s", ErrJobNotFound, jobID)
	}
	if old.Status == jobstate.JobCompleted {
		return Job{}, fmt.Errorf("%w: job %s is COMPLETED", ErrJobState, jobID)
	}
	now := j.clock.Now()
	job := old.clone()
	for i, e := range job.Executions {
		job.Executions[i], _ = jobstate.Cancel(e, opts.Force, now)
	}
	if job.Status != jobstate.JobCanceled {
		job.Status, job.CompletedAt = jobstate.JobCanceled, now
	}
	job.ForceCanceled = job.ForceCanceled || opts.Force
	job.ReasonCode, job.Comment, job.LastUpdatedAt = opts.ReasonCode, opts.Comment, now
	events, err := j.replaceLocked(old, &job, now)
	if err != nil {
		return Job{}, err
	}
	j.sendLocked(events)
	return job.clone(), nil
}

// CancelJobExecution cancels one thing's execution of a job: a QUEUED one, or with
// force an IN_PROGRESS one. Errors wrap ErrJobNotFound, or ErrJobState when the
// execution is terminal or IN_PROGRESS without force.
func (s *Server) CancelJobExecution(ctx context.Context, jobID, thing string, force bool) (jobstate.Execution, error) {
	return s.cancelJobExecution(ctx, jobID, thing, force, nil, nil)
}

// errVersionConflict is CancelJobExecution's expectedVersion mismatch over HTTPS
// (VersionConflictException); the Go API has no expected version.
var errVersionConflict = errors.New("localiot: expectedVersion does not match the job execution's version")

// cancelJobExecution is CancelJobExecution with the HTTPS API's optional checks: the
// execution's version must be expectedVersion when that is not nil, and details, when
// not nil, replace its status details.
func (s *Server) cancelJobExecution(ctx context.Context, jobID, thing string, force bool, expectedVersion *int64, details map[string]string) (jobstate.Execution, error) {
	if err := ctx.Err(); err != nil {
		return jobstate.Execution{}, err
	}
	j := s.jobs
	j.mu.Lock()
	defer j.mu.Unlock()
	old, i, err := j.findLocked(jobID, thing)
	if err != nil {
		return jobstate.Execution{}, err
	}
	if expectedVersion != nil && *expectedVersion != old.Executions[i].VersionNumber {
		return jobstate.Execution{}, fmt.Errorf("%w: execution of %s on %s is at version %d", errVersionConflict, jobID, thing, old.Executions[i].VersionNumber)
	}
	now := j.clock.Now()
	e, changed := jobstate.Cancel(old.Executions[i], force, now)
	if !changed {
		return jobstate.Execution{}, fmt.Errorf("%w: execution of %s on %s is %s", ErrJobState, jobID, thing, e.Status)
	}
	if details != nil {
		e.StatusDetails = maps.Clone(details)
	}
	job := old.clone()
	job.Executions[i] = e
	job.refreshStatus(now)
	events, err := j.replaceLocked(old, &job, now, thing)
	if err != nil {
		return jobstate.Execution{}, err
	}
	j.sendLocked(events)
	return e.Clone(), nil
}

// DeleteJob deletes a job and its executions; pending ones leave their things' queues
// (with notify and notify-next as that calls for). Without force only a COMPLETED or
// CANCELED job may be deleted. Errors wrap ErrJobNotFound or ErrJobState.
func (s *Server) DeleteJob(ctx context.Context, jobID string, force bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	j := s.jobs
	j.mu.Lock()
	defer j.mu.Unlock()
	old, ok := j.jobs[jobID]
	if !ok {
		return fmt.Errorf("%w: %s", ErrJobNotFound, jobID)
	}
	if old.Status == jobstate.JobInProgress && !force {
		return fmt.Errorf("%w: job %s is IN_PROGRESS: cancel it first, or delete with force", ErrJobState, jobID)
	}
	events, err := j.replaceLocked(old, nil, j.clock.Now())
	if err != nil {
		return err
	}
	j.sendLocked(events)
	return nil
}

// DescribeJob returns a job with its executions. Errors wrap ErrJobNotFound.
func (s *Server) DescribeJob(ctx context.Context, jobID string) (Job, error) {
	if err := ctx.Err(); err != nil {
		return Job{}, err
	}
	s.jobs.mu.Lock()
	defer s.jobs.mu.Unlock()
	job, ok := s.jobs.jobs[jobID]
	if !ok {
		return Job{}, fmt.Errorf("%w: %s", ErrJobNotFound, jobID)
	}
	return job.clone(), nil
}

// ListJobs returns every job, in creation order.
func (s *Server) ListJobs(ctx context.Context) ([]Job, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.jobs.mu.Lock()
	defer s.jobs.mu.Unlock()
	jobs := make([]Job, 0, len(s.jobs.jobs))
	for _, j := range s.jobs.jobs {
		jobs = append(jobs, j.clone())
	}
	slices.SortFunc(jobs, func(a, b Job) int { return cmp.Compare(a.Seq, b.Seq) })
	return jobs, nil
}

// DescribeJobExecution returns thing's execution of a job. Errors wrap ErrJobNotFound.
func (s *Server) DescribeJobExecution(ctx context.Context, jobID, thing string) (jobstate.Execution, error) {
	if err := ctx.Err(); err != nil {
		return jobstate.Execution{}, err
	}
	s.jobs.mu.Lock()
	defer s.jobs.mu.Unlock()
	job, i, err := s.jobs.findLocked(jobID, thing)
	if err != nil {
		return jobstate.Execution{}, err
	}
	return job.Executions[i].Clone(), nil
}

// DescribeJobExecutionNumber returns thing's execution of a job with the given
// execution number: its latest, or one a retry replaced. Errors wrap ErrJobNotFound.
func (s *Server) DescribeJobExecutionNumber(ctx context.Context, jobID, thing string, executionNumber int64) (jobstate.Execution, error) {
	if err := ctx.Err(); err != nil {
		return jobstate.Execution{}, err
	}
	s.jobs.mu.Lock()
	defer s.jobs.mu.Unlock()
	job, i, err := s.jobs.findLocked(jobID, thing)
	if err != nil {
		return jobstate.Execution{}, err
	}
	if e := job.Executions[i]; e.ExecutionNumber == executionNumber {
		return e.Clone(), nil
	}
	for _, e := range job.EarlierExecutions {
		if e.ThingName == thing && e.ExecutionNumber == executionNumber {
			return e.Clone(), nil
		}
	}
	return jobstate.Execution{}, fmt.Errorf("%w: job %s has no execution number %d on %s", ErrJobNotFound, jobID, executionNumber, thing)
}

// ListJobExecutionsForJob returns a job's latest executions, one per target, in its
// targets' order. Errors wrap ErrJobNotFound.
func (s *Server) ListJobExecutionsForJob(ctx context.Context, jobID string) ([]jobstate.Execution, error) {
	job, err := s.DescribeJob(ctx, jobID)
	if err != nil {
		return nil, err
	}
	return job.Executions, nil
}

// ListJobExecutionsForThing returns a thing's executions of every job, pending ones
// first in the order the thing is handed them (IN_PROGRESS, then QUEUED, each by when
// it was queued), then terminal ones by when they were queued.
func (s *Server) ListJobExecutionsForThing(ctx context.Context, thing string) ([]jobstate.Execution, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.jobs.mu.Lock()
	defer s.jobs.mu.Unlock()
	execs := s.jobs.view(thing).Executions
	for i := range execs {
		execs[i] = execs[i].Clone()
	}
	jobstate.SortQueue(execs)
	return execs, nil
}

// findLocked returns the job and the index of thing's execution in it.
func (s *jobsService) findLocked(jobID, thing string) (*Job, int, error) {
	job, ok := s.jobs[jobID]
	if !ok {
		return nil, 0, fmt.Errorf("%w: %s", ErrJobNotFound, jobID)
	}
	i := s.executionLocked(job, thing)
	if i < 0 {
		return nil, 0, fmt.Errorf("%w: job %s has no execution on %s", ErrJobNotFound, jobID, thing)
	}
	return job, i, nil
}
