package localiot

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/shadowsync/shadowsync/jobstate"
)

// BenchmarkJobsUpdateOneOfManyTargets measures a device's update of its execution of a
// job aimed at 1,000 things, as the service handles it (without the broker): the cost
// that grows with the job's size is the service's, not the device's.
func BenchmarkJobsUpdateOneOfManyTargets(b *testing.B) {
	const n = 1000
	s, err := New(Options{Clock: newFakeClock(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	spec := JobSpec{JobID: "big", Document: json.RawMessage(`{}`)}
	for i := range n {
		spec.Targets = append(spec.Targets, fmt.Sprintf("thing-%d", i))
	}
	if _, err := s.CreateJob(b.Context(), spec); err != nil {
		b.Fatal(err)
	}
	topics := make([]jobstate.Topic, n)
	for i, thing := range spec.Targets {
		t, ok := jobstate.ParseTopic("$aws/things/" + thing + "/jobs/big/update")
		if !ok {
			b.Fatalf("topic of %s does not parse", thing)
		}
		topics[i] = t
	}
	var rejected int
	reply := func(topic string, _ []byte) {
		if len(topic) > 9 && topic[len(topic)-9:] == "/rejected" {
			rejected++
		}
	}
	payload := []byte(`{"status":"IN_PROGRESS","statusDetails":{"step":"download"}}`)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		s.jobs.handle(topics[i%n], payload, reply)
	}
	if rejected > 0 {
		b.Fatalf("%d updates rejected", rejected)
	}
}

// TestJobsUpdateNotifiesOnlyItsThing: an update of one execution of a job aimed at
// several things announces the change to that thing only; a timeout likewise.
func TestJobsUpdateNotifiesOnlyItsThing(t *testing.T) {
	s, clock := startJobsServer(t)
	a, b := jobsDevice(t, s, "a"), jobsDevice(t, s, "b")
	createJob(t, s, JobSpec{JobID: "j", Targets: []string{"a", "b"}, Document: json.RawMessage(`{}`)})
	for _, d := range []struct {
		c     *client
		thing string
	}{{a, "a"}, {b, "b"}} {
		d.c.expectPrefix(t, jobstate.NotifyTopic(d.thing), "{")
		d.c.expectPrefix(t, jobstate.NotifyNextTopic(d.thing), "{")
	}
	a.publish(t, "$aws/things/a/jobs/start-next", `{"stepTimeoutInMinutes":1}`)
	a.expectPrefix(t, "$aws/things/a/jobs/start-next/accepted", "{")
	a.expectJSON(t, jobstate.NotifyTopic("a"), `{"timestamp":"T+0","jobs":{"IN_PROGRESS":[{"jobId":"j","queuedAt":"T+0","startedAt":"T+0","lastUpdatedAt":"T+0","versionNumber":2,"executionNumber":1}]}}`)
	b.expectNothingPending(t, "b")
	clock.Advance(time.Minute)
	a.expectJSON(t, jobstate.NotifyTopic("a"), `{"timestamp":"T+60","jobs":{}}`)
	a.expectJSON(t, jobstate.NotifyNextTopic("a"), `{"timestamp":"T+60"}`)
	b.expectNothingPending(t, "b")
	if e, _ := s.DescribeJobExecution(t.Context(), "j", "b"); e.Status != jobstate.Queued || e.VersionNumber != 1 {
		t.Errorf("b's execution after a's changes: %s v%d, want QUEUED v1", e.Status, e.VersionNumber)
	}
}
