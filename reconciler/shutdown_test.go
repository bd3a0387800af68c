package reconciler_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shadowsync/shadowsync/internal/testserver"
	"github.com/shadowsync/shadowsync/localiot"
	"github.com/shadowsync/shadowsync/reconciler"
)

// lockedBuffer is a log sink safe for concurrent writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A reconcile that finishes during the shutdown drain and asks to run again (a
// requeue, or a retry after an error) cannot be run any more; that must be said in
// the log and counted, not silently ignored.
func TestShutdownCountsWorkAskedForDuringDrain(t *testing.T) {
	for _, tc := range []struct {
		name string
		end  func() (reconciler.Result, error)
		log  string
	}{
		{"requeue", func() (reconciler.Result, error) { return reconciler.Result{RequeueAfter: time.Minute}, nil }, "shutdown: requeue not run"},
		{"retry", func() (reconciler.Result, error) { return reconciler.Result{}, errors.New("motor stalled") }, "shutdown: retry not run"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := testserver.Start(t, localiot.Options{})
			var logs lockedBuffer
			reg := prometheus.NewRegistry()
			m, err := reconciler.NewManager(fastConfig(srv.Endpoints().Plain), reconciler.Options{
				Registry: reg,
				Logger:   slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})),
			})
			if err != nil {
				t.Fatal(err)
			}
			started, proceed := make(chan struct{}, 1), make(chan struct{})
			if _, err := reconciler.Register(m, reconciler.ControllerOptions{Things: []string{"drain-1"}},
				reconciler.ReconcilerFunc[nDev](func(context.Context, reconciler.Request[nDev]) (reconciler.Result, error) {
					select {
					case started <- struct{}{}:
					default:
					}
					<-proceed
					return tc.end()
				})); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() { done <- m.Start(ctx) }()
			appSet(t, shadow(t, app(t, srv.Endpoints().Plain), "drain-1"), 1)
			select {
			case <-started:
			case <-time.After(wait):
				t.Fatal("no reconcile started")
			}
			cancel()
			eventually(t, wait, func() error {
				if !reconciler.ShuttingDown(m) {
					return errors.New("the manager has not begun its shutdown")
				}
				return nil
			})
			close(proceed) // the reconcile in flight ends during the drain
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("Start: %v", err)
				}
			case <-time.After(wait):
				t.Fatal("Start did not return")
			}
			if !strings.Contains(logs.String(), tc.log) || !strings.Contains(logs.String(), "drain-1") {
				t.Errorf("the log does not say %q for drain-1:\n%s", tc.log, logs.String())
			}
			if got := counterValue(t, reg, "shadowsync_shutdown_dropped_total"); got != 1 {
				t.Errorf("shadowsync_shutdown_dropped_total = %v, want 1", got)
			}
		})
	}
}

// counterValue returns the value of the unlabelled counter name in reg.
func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no counter %s", name)
	return 0
}
