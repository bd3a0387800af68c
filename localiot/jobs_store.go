package localiot

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/shadowsync/shadowsync/jobstate"
)

// Job is one job of the local AWS IoT Jobs service with its executions, as the
// service keeps and stores it, and as its Go API (Server.CreateJob and the others)
// returns it. Times are the service clock's.
type Job struct {
	// JobID names the job: 1 to 64 of a-z, A-Z, 0-9, '_' and '-'.
	JobID string `json:"jobId"`
	// Document is the job document, a JSON object of at most 32 KiB, handed to the
	// devices as jobDocument.
	Document json.RawMessage `json:"document"`
	// Targets are the things the job runs on, in the order given at creation.
	Targets []string `json:"targets"`
	// Status is IN_PROGRESS until every execution is terminal (COMPLETED) or the job
	// is canceled (CANCELED).
	Status jobstate.JobStatus `json:"status"`
	// InProgressTimeout is how long an execution may stay IN_PROGRESS before it is
	// TIMED_OUT; zero for no limit.
	InProgressTimeout time.Duration `json:"inProgressTimeout,omitempty"`
	// Description is free text given at creation.
	Description string `json:"description,omitempty"`
	// ForceCanceled is set when the job was canceled with force.
	ForceCanceled bool `json:"forceCanceled,omitempty"`
	// ReasonCode and Comment are what CancelJob was given.
	ReasonCode string `json:"reasonCode,omitempty"`
	Comment    string `json:"comment,omitempty"`
	// CreatedAt, LastUpdatedAt and CompletedAt (zero until COMPLETED or CANCELED)
	// are when the job was created, last changed and finished.
	CreatedAt     time.Time `json:"createdAt"`
	LastUpdatedAt time.Time `json:"lastUpdatedAt"`
	CompletedAt   time.Time `json:"completedAt,omitzero"`
	// Seq orders jobs by creation; a thing's queue follows it among executions
	// queued in the same instant.
	Seq uint64 `json:"seq"`
	// Executions are the job's latest executions, one per target, in Targets' order.
	Executions []jobstate.Execution `json:"executions"`
	// RetryConfig is the job's jobExecutionsRetryConfig; nil for none.
	RetryConfig *jobstate.RetryConfig `json:"retryConfig,omitempty"`
	// EarlierExecutions are the executions that were retried, in the order they
	// ended: each ended FAILED or TIMED_OUT, and an execution of the same thing with
	// the next execution number took its place in Executions.
	EarlierExecutions []jobstate.Execution `json:"earlierExecutions,omitempty"`
}

// clone returns a deep copy of j, sharing nothing with it.
func (j Job) clone() Job {
	j.Document = slices.Clone(j.Document)
	j.Targets = slices.Clone(j.Targets)
	j.Executions = slices.Clone(j.Executions)
	for i := range j.Executions {
		j.Executions[i] = j.Executions[i].Clone()
	}
	if j.RetryConfig != nil {
		rc := jobstate.RetryConfig{CriteriaList: slices.Clone(j.RetryConfig.CriteriaList)}
		j.RetryConfig = &rc
	}
	j.EarlierExecutions = slices.Clone(j.EarlierExecutions)
	for i := range j.EarlierExecutions {
		j.EarlierExecutions[i] = j.EarlierExecutions[i].Clone()
	}
	return j
}

// JobStore keeps the jobs of a local Jobs service. MemoryStore and BoltStore are
// JobStores too, so a server whose Options.Store is one keeps its jobs with its
// shadows; a BoltStore keeps them across restarts. Implementations must be safe for
// concurrent use.
type JobStore interface {
	// LoadJobs returns every stored job, in any order.
	LoadJobs() ([]Job, error)
	// SaveJob stores j, replacing any earlier version of it.
	SaveJob(j Job) error
	// DeleteJob forgets the job; deleting an unknown job is no error.
	DeleteJob(jobID string) error
}

// LoadJobs returns every job the store holds.
func (m *MemoryStore) LoadJobs() ([]Job, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	jobs := make([]Job, 0, len(m.jobs))
	for _, j := range m.jobs {
		jobs = append(jobs, j.clone())
	}
	return jobs, nil
}

// SaveJob stores j, replacing any earlier version of it.
func (m *MemoryStore) SaveJob(j Job) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.jobs == nil {
		m.jobs = make(map[string]Job)
	}
	m.jobs[j.JobID] = j.clone()
	return nil
}

// DeleteJob forgets the job.
func (m *MemoryStore) DeleteJob(jobID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.jobs, jobID)
	return nil
}

var jobsBucket = []byte("jobs")

// LoadJobs reads every job in the database file.
func (b *BoltStore) LoadJobs() ([]Job, error) {
	var jobs []Job
	err := b.db.View(func(tx *bolt.Tx) error {
		bucket := tx.Bucket(jobsBucket)
		if bucket == nil {
			return nil
		}
		return bucket.ForEach(func(k, v []byte) error {
			var j Job
			if err := json.Unmarshal(v, &j); err != nil {
				return fmt.Errorf("job record %q: %w", k, err)
			}
			if j.JobID != string(k) {
				return fmt.Errorf("job record %q holds job %q", k, j.JobID)
			}
			jobs = append(jobs, j)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("localiot: load jobs: %w", err)
	}
	return jobs, nil
}

// SaveJob commits j to the database file (fsync) before it returns.
func (b *BoltStore) SaveJob(j Job) error {
	if err := jobstate.ValidateJobID(j.JobID); err != nil {
		return err
	}
	data, err := json.Marshal(j)
	if err != nil {
		return err
	}
	err = b.db.Update(func(tx *bolt.Tx) error {
		bucket, err := tx.CreateBucketIfNotExists(jobsBucket)
		if err != nil {
			return err
		}
		return bucket.Put([]byte(j.JobID), data)
	})
	if err != nil {
		return fmt.Errorf("localiot: save job %s: %w", j.JobID, err)
	}
	return nil
}

// DeleteJob removes the job from the database file.
func (b *BoltStore) DeleteJob(jobID string) error {
	err := b.db.Update(func(tx *bolt.Tx) error {
		bucket := tx.Bucket(jobsBucket)
		if bucket == nil {
			return nil
		}
		return bucket.Delete([]byte(jobID))
	})
	if err != nil {
		return fmt.Errorf("localiot: delete job %s: %w", jobID, err)
	}
	return nil
}

// jobStoreOf returns the JobStore a server uses: its shadow store when that is a
// JobStore too, else a MemoryStore of its own.
func jobStoreOf(store Store) JobStore {
	if js, ok := store.(JobStore); ok {
		return js
	}
	return &MemoryStore{}
}

// Errors of the Jobs service's Go API, wrapped with the details. They match the
// control plane's AWS exceptions, so an HTTPS front end can map them.
var (
	// ErrJobNotFound: no such job, or no execution of it on that thing
	// (ResourceNotFoundException).
	ErrJobNotFound = errors.New("localiot: job not found")
	// ErrJobExists: a job with that ID exists (ResourceAlreadyExistsException).
	ErrJobExists = errors.New("localiot: job already exists")
	// ErrInvalidJob: the request breaks AWS's rules (InvalidRequestException).
	ErrInvalidJob = errors.New("localiot: invalid job request")
	// ErrJobState: the job's or execution's state does not allow the request, e.g.
	// deleting an IN_PROGRESS job without force (InvalidStateTransitionException).
	ErrJobState = errors.New("localiot: job state does not allow this")
)

// sortedThings returns the distinct targets of the given jobs, sorted.
func sortedThings(jobs ...*Job) []string {
	set := map[string]bool{}
	for _, j := range jobs {
		if j != nil {
			for _, t := range j.Targets {
				set[t] = true
			}
		}
	}
	return slices.Sorted(maps.Keys(set))
}
