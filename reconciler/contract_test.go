package reconciler_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shadowsync/shadowsync/internal/testserver"
	"github.com/shadowsync/shadowsync/localiot"
	"github.com/shadowsync/shadowsync/reconciler"
	"github.com/shadowsync/shadowsync/shadowclient"
	"github.com/shadowsync/shadowsync/shadowstate"
)

// contractLight is the small light a new user writes first: every zero value matters.
type contractLight struct {
	On         bool   `json:"on"`
	Brightness int    `json:"brightness,omitempty" jsonschema:"minimum=0,maximum=100"`
	Color      string `json:"color,omitempty"`
}

// lightHW is the light's hardware: what a Reconcile that applies Desired whole sets.
type lightHW struct {
	mu    sync.Mutex
	state map[string]contractLight
}

func (h *lightHW) get(thing string) contractLight {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.state[thing]
}

func (h *lightHW) reconcile(_ context.Context, req reconciler.Request[contractLight]) (reconciler.Result, error) {
	h.mu.Lock()
	h.state[req.Thing] = req.Desired
	h.mu.Unlock()
	*req.Reported = req.Desired
	return reconciler.Result{}, nil
}

func startLights(t *testing.T, endpoint string, opts reconciler.ControllerOptions) (*lightHW, *reconciler.Controller[contractLight]) {
	t.Helper()
	m, err := reconciler.NewManager(fastConfig(endpoint), reconciler.Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	hw := &lightHW{state: map[string]contractLight{}}
	c, err := reconciler.Register(m, opts, reconciler.ReconcilerFunc[contractLight](hw.reconcile))
	if err != nil {
		t.Fatal(err)
	}
	run(t, m)
	if err := m.Conn().AwaitConnection(t.Context()); err != nil {
		t.Fatal(err)
	}
	return hw, c
}

// convergedReported waits until the shadow of thing has desired state and no delta, and returns
// its reported state.
func convergedReported(t *testing.T, h *shadowclient.Handle) shadowstate.Object {
	t.Helper()
	var doc *shadowstate.Document
	eventually(t, wait, func() error {
		var err error
		doc, err = h.Get(t.Context())
		switch {
		case err != nil:
			return err
		case doc.State.Desired == nil || doc.State.Delta != nil:
			return fmt.Errorf("desired %s, reported %s, delta %s", jsonText(doc.State.Desired), jsonText(doc.State.Reported), jsonText(doc.State.Delta))
		}
		return nil
	})
	return doc.State.Reported
}

func TestZeroValuesDesiredOnANewShadowAreReported(t *testing.T) {
	srv := testserver.Start(t, localiot.Options{})
	startLights(t, srv.Endpoints().Plain, reconciler.ControllerOptions{Things: []string{"zero-1", "zero-2"}})
	c := app(t, srv.Endpoints().Plain)
	for thing, desired := range map[string]string{
		"zero-1": `{"brightness":0}`,                       // an omitempty field desired as 0
		"zero-2": `{"on":false,"brightness":0,"color":""}`, // every field at its zero value
	} {
		h := shadow(t, c, thing)
		if _, err := h.UpdateDesired(t.Context(), json.RawMessage(desired)); err != nil {
			t.Fatal(err)
		}
		reported := convergedReported(t, h)
		for k, v := range obj(t, desired) {
			if !shadowstate.Equal(reported[k], v) {
				t.Errorf("%s: reported %s = %v, want %v", thing, k, reported[k], v)
			}
		}
	}
}

func TestPartialDesiredKeepsTheFieldsNobodyDesired(t *testing.T) {
	srv := testserver.Start(t, localiot.Options{})
	hw, lights := startLights(t, srv.Endpoints().Plain, reconciler.ControllerOptions{Things: []string{"lamp-1"}})
	// The device says what it is on start: on, at 30, red.
	if err := lights.Report(t.Context(), "lamp-1", func(l *contractLight) { *l = contractLight{On: true, Brightness: 30, Color: "red"} }); err != nil {
		t.Fatal(err)
	}
	hw.mu.Lock()
	hw.state["lamp-1"] = contractLight{On: true, Brightness: 30, Color: "red"}
	hw.mu.Unlock()

	h := shadow(t, app(t, srv.Endpoints().Plain), "lamp-1")
	if _, err := h.UpdateDesired(t.Context(), map[string]any{"brightness": 60}); err != nil {
		t.Fatal(err)
	}
	reported := convergedReported(t, h)
	want := contractLight{On: true, Brightness: 60, Color: "red"}
	if got := hw.get("lamp-1"); got != want {
		t.Errorf("hardware %+v, want %+v: a partial desired state changed fields nobody desired", got, want)
	}
	if jsonText(reported) != `{"brightness":60,"color":"red","on":true}` {
		t.Errorf("reported %s", jsonText(reported))
	}
}

func TestStatusFollowsADesiredChangeThatLeavesNoDelta(t *testing.T) {
	srv := testserver.Start(t, localiot.Options{})
	startLights(t, srv.Endpoints().Plain, reconciler.ControllerOptions{Things: []string{"lamp-s"}, StatusField: "status"})
	h := shadow(t, app(t, srv.Endpoints().Plain), "lamp-s")
	status := func(v int64) shadowstate.Object {
		t.Helper()
		var st shadowstate.Object
		eventually(t, wait, func() error {
			doc, err := h.Get(t.Context())
			if err != nil {
				return err
			}
			st, _ = doc.State.Reported["status"].(shadowstate.Object)
			num, _ := st["observedVersion"].(json.Number)
			if n, _ := num.Int64(); n < v {
				return fmt.Errorf("status %s, want observedVersion >= %d", jsonText(st), v)
			}
			return nil
		})
		return st
	}
	for i, step := range []struct {
		brightness int
		ok         bool
	}{{40, true}, {150, false}, {40, true}} {
		acc, err := h.UpdateDesired(t.Context(), map[string]any{"brightness": step.brightness})
		if err != nil {
			t.Fatal(err)
		}
		st := status(acc.Version)
		if st["ok"] != step.ok || (step.ok != (st["error"] == nil)) {
			t.Errorf("step %d (brightness %d): status %s, want ok=%v", i, step.brightness, jsonText(st), step.ok)
		}
	}
}

func TestReportFromInsideReconcileNeverHangs(t *testing.T) {
	srv := testserver.Start(t, localiot.Options{})
	m, err := reconciler.NewManager(fastConfig(srv.Endpoints().Plain), reconciler.Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		same, other error
	}
	results := make(chan result, 4)
	var lights *reconciler.Controller[contractLight]
	lights, err = reconciler.Register(m, reconciler.ControllerOptions{Things: []string{"re-1", "re-2"}},
		reconciler.ReconcilerFunc[contractLight](func(ctx context.Context, req reconciler.Request[contractLight]) (reconciler.Result, error) {
			*req.Reported = req.Desired
			if req.Thing != "re-1" {
				return reconciler.Result{}, nil
			}
			var r result
			r.same = lights.Report(ctx, "re-1", func(l *contractLight) { l.Color = "from-report" })
			r.other = lights.Report(ctx, "re-2", func(l *contractLight) { l.Color = "from-re-1" })
			results <- r
			return reconciler.Result{}, nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	run(t, m)
	h := shadow(t, app(t, srv.Endpoints().Plain), "re-1")
	if _, err := h.UpdateDesired(t.Context(), map[string]any{"on": true}); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-results:
		if !errors.Is(r.same, reconciler.ErrReportInReconcile) {
			t.Errorf("Report of the shadow being reconciled: %v, want ErrReportInReconcile", r.same)
		}
		if r.other != nil {
			t.Errorf("Report of another shadow from inside Reconcile: %v", r.other)
		}
	case <-time.After(wait):
		t.Fatal("Report called from inside Reconcile did not return")
	}
	eventually(t, wait, func() error {
		r, err := reportedOf(srv, "re-2")
		if err != nil || r["color"] != "from-re-1" {
			return fmt.Errorf("re-2 reported %v %v", r, err)
		}
		return nil
	})
}

func TestReportGivesUpWhenItsContextEndsWhileReconcileRuns(t *testing.T) {
	srv := testserver.Start(t, localiot.Options{})
	m, err := reconciler.NewManager(fastConfig(srv.Endpoints().Plain), reconciler.Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	started, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	lights, err := reconciler.Register(m, reconciler.ControllerOptions{Things: []string{"slow-1"}},
		reconciler.ReconcilerFunc[contractLight](func(ctx context.Context, req reconciler.Request[contractLight]) (reconciler.Result, error) {
			once.Do(func() { close(started) })
			<-release
			*req.Reported = req.Desired
			return reconciler.Result{}, nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	run(t, m)
	defer close(release)
	h := shadow(t, app(t, srv.Endpoints().Plain), "slow-1")
	if _, err := h.UpdateDesired(t.Context(), map[string]any{"on": true}); err != nil {
		t.Fatal(err)
	}
	recv(t, started, "no reconcile started")
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- lights.Report(ctx, "slow-1", func(l *contractLight) { l.Color = "x" }) }()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Report while Reconcile runs past its deadline: %v, want context.DeadlineExceeded", err)
		}
	case <-time.After(wait):
		t.Fatal("Report did not give up when its ctx ended")
	}
}

func obj(t *testing.T, s string) shadowstate.Object {
	t.Helper()
	var o shadowstate.Object
	if err := shadowstate.Unmarshal([]byte(s), &o); err != nil {
		t.Fatal(err)
	}
	return o
}

// TestLoggerCarriesTheShadow: reconciler.Logger(ctx) inside Reconcile is the
// Manager's logger with the controller, thing and shadow attached, from the
// Reconcile's goroutine and from one it starts; outside a reconcile it discards.
func TestLoggerCarriesTheShadow(t *testing.T) {
	srv := testserver.Start(t, localiot.Options{})
	var mu sync.Mutex
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&lockedWriter{mu: &mu, w: &buf}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	m, err := reconciler.NewManager(fastConfig(srv.Endpoints().Plain), reconciler.Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	logged := make(chan struct{}, 1)
	_, err = reconciler.Register(m, reconciler.ControllerOptions{Name: "lamps", Shadow: "lamp", Things: []string{"log-1"}},
		reconciler.ReconcilerFunc[contractLight](func(ctx context.Context, req reconciler.Request[contractLight]) (reconciler.Result, error) {
			*req.Reported = req.Desired
			if !req.Desired.On {
				return reconciler.Result{}, nil
			}
			reconciler.Logger(ctx).Info("from reconcile")
			done := make(chan struct{})
			go func() { defer close(done); reconciler.Logger(ctx).Info("from its goroutine") }()
			<-done
			select {
			case logged <- struct{}{}:
			default:
			}
			return reconciler.Result{}, nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	run(t, m)
	h, err := app(t, srv.Endpoints().Plain).Shadow("log-1", "lamp")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.UpdateDesired(t.Context(), map[string]any{"on": true}); err != nil {
		t.Fatal(err)
	}
	recv(t, logged, "Reconcile's log lines")
	mu.Lock()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	mu.Unlock()
	found := 0
	for _, line := range lines {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil || (rec["msg"] != "from reconcile" && rec["msg"] != "from its goroutine") {
			continue
		}
		found++
		if rec["thing"] != "log-1" || rec["shadow"] != "lamp" || rec["controller"] != "lamps" {
			t.Errorf("%s: want thing log-1, shadow lamp, controller lamps", line)
		}
	}
	if found != 2 {
		t.Errorf("%d of the 2 lines logged through reconciler.Logger found:\n%s", found, strings.Join(lines, "\n"))
	}
	// Outside a reconcile: a logger that writes nothing.
	if reconciler.Logger(t.Context()).Handler().Enabled(t.Context(), slog.LevelError) {
		t.Error("Logger outside a reconcile writes")
	}
}

// lockedWriter serialises writes to w.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
