package jobsclient_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/shadowsync/shadowsync/internal/testserver"
	"github.com/shadowsync/shadowsync/jobsclient"
	"github.com/shadowsync/shadowsync/jobstate"
	"github.com/shadowsync/shadowsync/localiot"
	"github.com/shadowsync/shadowsync/transport"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const wait = 15 * time.Second

// setup starts a localiot and a jobs client on a plain connection to it.
func setup(t *testing.T, opts jobsclient.Options) (*localiot.Server, *transport.Conn, *jobsclient.Client) {
	t.Helper()
	srv := testserver.Start(t, localiot.Options{Limits: localiot.Limits{Off: true}})
	conn, c := connect(t, srv, opts)
	return srv, conn, c
}

func connect(t *testing.T, srv *localiot.Server, opts jobsclient.Options) (*transport.Conn, *jobsclient.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	conn, err := transport.Dial(ctx, transport.Config{Endpoint: srv.Endpoints().Plain, MaxPublishRate: -1})
	if err != nil {
		t.Fatal(err)
	}
	c, err := jobsclient.New(conn, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if err := c.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
		_ = conn.Close(ctx)
	})
	return conn, c
}

func createJob(t *testing.T, srv *localiot.Server, id, doc string, things ...string) {
	t.Helper()
	if _, err := srv.CreateJob(t.Context(), localiot.JobSpec{JobID: id, Targets: things, Document: json.RawMessage(doc)}); err != nil {
		t.Fatal(err)
	}
}

func thing(t *testing.T, c *jobsclient.Client, name string) *jobsclient.Thing {
	t.Helper()
	th, err := c.Thing(name)
	if err != nil {
		t.Fatal(err)
	}
	return th
}

func TestRequestsRoundTrip(t *testing.T) {
	srv, _, c := setup(t, jobsclient.Options{})
	ctx := t.Context()
	dev := thing(t, c, "dev-1")

	next, err := dev.Describe(ctx, jobstate.NextJobID, jobstate.DescribeRequest{})
	if err != nil || next.Execution != nil {
		t.Fatalf("describe $next with nothing pending: %+v, %v", next, err)
	}
	createJob(t, srv, "job-1", `{"op":"reboot"}`, "dev-1")
	createJob(t, srv, "job-2", `{"op":"update"}`, "dev-1")

	pend, err := dev.GetPending(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(pend.QueuedJobs) != 2 || pend.QueuedJobs[0].JobID != "job-1" || len(pend.InProgressJobs) != 0 {
		t.Fatalf("pending: %+v", pend)
	}
	step := int64(10)
	st, err := dev.StartNext(ctx, jobstate.StartNextRequest{StatusDetails: map[string]string{"step": "download"}, StepTimeoutInMinutes: &step})
	if err != nil {
		t.Fatal(err)
	}
	ex := st.Execution
	if ex == nil || ex.JobID != "job-1" || ex.Status != jobstate.InProgress || string(ex.JobDocument) != `{"op":"reboot"}` || ex.StatusDetails["step"] != "download" {
		t.Fatalf("start-next: %+v", ex)
	}
	d, err := dev.Describe(ctx, "job-1", jobstate.DescribeRequest{})
	if err != nil || d.Execution.VersionNumber != ex.VersionNumber {
		t.Fatalf("describe: %+v, %v", d, err)
	}

	// A stale expectedVersion is a typed rejection carrying the current state.
	stale := ex.VersionNumber - 1
	_, err = dev.Update(ctx, "job-1", jobstate.UpdateRequest{Status: jobstate.Succeeded, ExpectedVersion: &stale})
	var rej *jobstate.ErrorResponse
	if !errors.As(err, &rej) || rej.Code != jobstate.CodeVersionMismatch || rej.ExecutionState == nil || rej.ExecutionState.VersionNumber != ex.VersionNumber {
		t.Fatalf("stale update: %v (%+v)", err, rej)
	}
	cur := ex.VersionNumber
	up, err := dev.Update(ctx, "job-1", jobstate.UpdateRequest{
		Status: jobstate.Succeeded, ExpectedVersion: &cur, StatusDetails: map[string]string{"step": "done"},
		IncludeJobExecutionState: true, IncludeJobDocument: true,
	})
	if err != nil || up.ExecutionState == nil || up.ExecutionState.Status != jobstate.Succeeded || string(up.JobDocument) != `{"op":"reboot"}` {
		t.Fatalf("update: %+v, %v", up, err)
	}
	_, err = dev.Describe(ctx, "job-1", jobstate.DescribeRequest{})
	if !errors.As(err, &rej) || rej.Code != jobstate.CodeTerminalStateReached {
		t.Fatalf("describe of a terminal execution: %v", err)
	}
	next, err = dev.Describe(ctx, jobstate.NextJobID, jobstate.DescribeRequest{})
	if err != nil || next.Execution == nil || next.Execution.JobID != "job-2" {
		t.Fatalf("describe $next: %+v, %v", next, err)
	}
	if _, err := dev.Update(ctx, "no such job!", jobstate.UpdateRequest{Status: jobstate.Failed}); err == nil {
		t.Error("an invalid job ID was sent")
	}
}

func TestEvents(t *testing.T) {
	srv, _, c := setup(t, jobsclient.Options{})
	dev := thing(t, c, "dev-1")
	lists := make(chan *jobstate.ListNotification, 10)
	nexts := make(chan *jobstate.NextNotification, 10)
	stop1, err := dev.OnNotify(t.Context(), func(_ context.Context, n *jobstate.ListNotification) { lists <- n })
	if err != nil {
		t.Fatal(err)
	}
	defer stop1()
	// A callback may make requests: events run apart from replies.
	stop2, err := dev.OnNotifyNext(t.Context(), func(ctx context.Context, n *jobstate.NextNotification) {
		if n.Execution != nil {
			if _, err := dev.GetPending(ctx); err != nil {
				t.Errorf("request from a callback: %v", err)
			}
		}
		nexts <- n
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stop2()
	createJob(t, srv, "job-1", `{"op":"reboot"}`, "dev-1")
	l := recv(t, lists, "notify")
	if len(l.Jobs[jobstate.Queued]) != 1 {
		t.Errorf("notify: %+v", l)
	}
	n := recv(t, nexts, "notify-next")
	if n.Execution == nil || n.Execution.JobID != "job-1" || string(n.Execution.JobDocument) != `{"op":"reboot"}` {
		t.Errorf("notify-next: %+v", n)
	}
	if _, err := srv.CancelJob(t.Context(), "job-1", localiot.CancelJobOptions{}); err != nil {
		t.Fatal(err)
	}
	if n := recv(t, nexts, "notify-next after cancel"); n.Execution != nil {
		t.Errorf("notify-next after cancel: %+v", n.Execution)
	}
}

func TestManyThingsMoveToWildcard(t *testing.T) {
	srv, _, c := setup(t, jobsclient.Options{FilterBudget: 2})
	for i := range 5 {
		name := fmt.Sprintf("dev-%d", i)
		createJob(t, srv, "job-"+name, `{"n":1}`, name)
		st, err := thing(t, c, name).StartNext(t.Context(), jobstate.StartNextRequest{})
		if err != nil || st.Execution == nil || st.Execution.JobID != "job-"+name {
			t.Fatalf("%s: %+v, %v", name, st, err)
		}
	}
}

func TestOfflineAndClosed(t *testing.T) {
	srv, conn, c := setup(t, jobsclient.Options{})
	dev := thing(t, c, "dev-1")
	if _, err := dev.GetPending(t.Context()); err != nil {
		t.Fatal(err)
	}
	testserver.Stop(t, srv)
	for conn.IsOnline() {
		select {
		case <-conn.SessionLost():
		case <-time.After(wait):
			t.Fatal("still online")
		}
	}
	if _, err := dev.GetPending(t.Context()); !errors.Is(err, jobsclient.ErrOffline) {
		t.Errorf("offline: %v", err)
	}
	if err := c.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := thing(t, c, "dev-1").StartNext(t.Context(), jobstate.StartNextRequest{}); !errors.Is(err, jobsclient.ErrOffline) && !errors.Is(err, jobsclient.ErrClientClosed) {
		t.Errorf("after Close: %v", err)
	}
}

func recv[V any](t *testing.T, ch <-chan V, what string) V {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(wait):
		t.Fatalf("no %s within %v", what, wait)
	}
	var zero V
	return zero
}
