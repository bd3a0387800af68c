package jobstate

import (
	"strings"
	"testing"
)

func TestRetryConfigAllows(t *testing.T) {
	cfg := func(cs ...RetryCriteria) RetryConfig { return RetryConfig{CriteriaList: cs} }
	failed := func(n int) RetryCriteria { return RetryCriteria{RetryFailed, n} }
	timedOut := func(n int) RetryCriteria { return RetryCriteria{RetryTimedOut, n} }
	all := func(n int) RetryCriteria { return RetryCriteria{RetryAll, n} }
	for _, tc := range []struct {
		name    string
		cfg     RetryConfig
		ended   Status
		earlier []Status
		want    bool
	}{
		{"no config", RetryConfig{}, Failed, nil, false},
		{"FAILED first failure", cfg(failed(1)), Failed, nil, true},
		{"FAILED exhausted", cfg(failed(1)), Failed, []Status{Failed}, false},
		{"FAILED zero retries", cfg(failed(0)), Failed, nil, false},
		{"FAILED does not cover TIMED_OUT", cfg(failed(3)), TimedOut, nil, false},
		{"TIMED_OUT first time out", cfg(timedOut(2)), TimedOut, nil, true},
		{"TIMED_OUT counts only time-outs", cfg(timedOut(1)), TimedOut, []Status{Failed}, true},
		{"TIMED_OUT exhausted", cfg(timedOut(2)), TimedOut, []Status{TimedOut, Failed, TimedOut}, false},
		{"ALL covers FAILED", cfg(all(2)), Failed, []Status{TimedOut}, true},
		{"ALL counts every retry", cfg(all(2)), Failed, []Status{TimedOut, Failed}, false},
		{"own type and ALL both allow", cfg(failed(3), all(3)), Failed, []Status{TimedOut, Failed}, true},
		{"ALL exhausted before own type", cfg(failed(3), all(2)), Failed, []Status{TimedOut, Failed}, false},
		{"own type exhausted before ALL", cfg(failed(1), all(5)), Failed, []Status{Failed}, false},
		{"ALL alone covers TIMED_OUT", cfg(failed(0), all(1)), TimedOut, nil, true},
		{"REJECTED is never retried", cfg(all(10)), Rejected, nil, false},
		{"CANCELED is never retried", cfg(all(10)), Canceled, nil, false},
		{"SUCCEEDED is never retried", cfg(all(10)), Succeeded, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.cfg.Allows(tc.ended, tc.earlier); got != tc.want {
				t.Errorf("Allows(%s, %v) = %v, want %v", tc.ended, tc.earlier, got, tc.want)
			}
		})
	}
}

func TestValidateRetryConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg     RetryConfig
		wantErr string
	}{
		{RetryConfig{CriteriaList: []RetryCriteria{{RetryFailed, 0}}}, ""},
		{RetryConfig{CriteriaList: []RetryCriteria{{RetryTimedOut, 10}, {RetryAll, 10}}}, ""},
		{RetryConfig{}, "0 entries"},
		{RetryConfig{CriteriaList: []RetryCriteria{{RetryFailed, 1}, {RetryTimedOut, 1}, {RetryAll, 1}}}, "3 entries"},
		{RetryConfig{CriteriaList: []RetryCriteria{{RetryFailed, 1}, {RetryFailed, 2}}}, "given twice"},
		{RetryConfig{CriteriaList: []RetryCriteria{{"REJECTED", 1}}}, "failureType"},
		{RetryConfig{CriteriaList: []RetryCriteria{{RetryAll, 11}}}, "numberOfRetries 11"},
		{RetryConfig{CriteriaList: []RetryCriteria{{RetryAll, -1}}}, "numberOfRetries -1"},
	} {
		err := ValidateRetryConfig(tc.cfg)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("ValidateRetryConfig(%+v) = %v, want nil", tc.cfg, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("ValidateRetryConfig(%+v) = %v, want an error with %q", tc.cfg, err, tc.wantErr)
		}
	}
}

func TestRetry(t *testing.T) {
	e := NewExecution("j", "thing", 1, t0)
	e.Status, e.VersionNumber, e.StatusDetails = Failed, 4, map[string]string{"k": "v"}
	r := Retry(e, 7, t0.Add(60))
	want := Execution{JobID: "j", ThingName: "thing", ExecutionNumber: 2, Status: Queued, VersionNumber: 1, QueuedAt: t0.Add(60), LastUpdatedAt: t0.Add(60), Seq: 7}
	if r.JobID != want.JobID || r.ThingName != want.ThingName || r.ExecutionNumber != 2 || r.Status != Queued || r.VersionNumber != 1 ||
		!r.QueuedAt.Equal(want.QueuedAt) || r.StatusDetails != nil || r.Seq != 7 || !r.StartedAt.IsZero() {
		t.Errorf("Retry = %+v, want %+v", r, want)
	}
}
