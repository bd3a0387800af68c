// Package testserver starts the local AWS IoT that this module's own tests run
// against: an in-process localiot (broker and Device Shadow service) on loopback,
// or localiot's Device Shadow service on another broker, each stopped when the test
// ends. It is internal: a test helper, not API. Users testing their own device logic
// have shadowtest, which adds things, certificates and matchers on top.
//
// localiot's own tests cannot use it (it imports localiot) and keep their own
// startServer; the example_*_test.go files keep a few visible lines of their own,
// since they show users how to run localiot.
package testserver

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shadowsync/shadowsync/localiot"
)

// Wait bounds how long Start waits for the server to serve, and how long stopping it
// waits for it to end.
const Wait = 15 * time.Second

// LogEnv is the environment variable under which the servers started here, when no
// Logger is given, log to the test's output at Debug (Logger).
const LogEnv = "SHADOWSYNC_TEST_LOG"

// service is what Start and StartShadowService run: localiot.Server and
// localiot.BrokerShadowService.
type service interface {
	Start(context.Context) error
	Ready() <-chan struct{}
}

// running maps each service started here and not yet stopped to its stop function.
var running sync.Map

// Start runs an in-process localiot with opts and returns it once it serves. It stops
// when the test ends (or earlier with Stop); the test fails if it does not start
// within Wait, if it does not stop within Wait, or if its Start returns an error. When
// opts.Logger is nil it is Logger(t).
func Start(t testing.TB, opts localiot.Options) *localiot.Server {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = Logger(t)
	}
	srv, err := localiot.New(opts)
	if err != nil {
		t.Fatalf("localiot: %v", err)
	}
	run(t, "localiot", srv)
	return srv
}

// StartShadowService runs localiot's Device Shadow service as a client of the broker
// in opts and returns it once it serves, as Start does for the whole localiot. When
// opts.Logger is nil it is Logger(t).
func StartShadowService(t testing.TB, opts localiot.BrokerShadowOptions) *localiot.BrokerShadowService {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = Logger(t)
	}
	svc, err := localiot.NewBrokerShadowService(opts)
	if err != nil {
		t.Fatalf("shadow service: %v", err)
	}
	run(t, "shadow service", svc)
	return svc
}

// Stop stops a server or shadow service started by Start or StartShadowService before
// the test ends (to take it away mid-test), and waits for it to end. Stopping one
// again does nothing.
func Stop(t testing.TB, s any) {
	t.Helper()
	stop, ok := running.Load(s)
	if !ok {
		return
	}
	stop.(func())()
}

// run starts s, waits until it is ready, and arranges for it to stop.
func run(t testing.TB, what string, s service) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Start(ctx) }()
	select {
	case <-s.Ready():
	case err := <-done:
		cancel()
		t.Fatalf("%s did not start: %v", what, err)
	case <-time.After(Wait):
		cancel()
		t.Fatalf("%s not ready within %v", what, Wait)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			running.Delete(s)
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("%s: %v", what, err)
				}
			case <-time.After(Wait):
				t.Errorf("%s did not stop within %v of being told to", what, Wait)
			}
		})
	}
	running.Store(s, stop)
	t.Cleanup(stop)
}

// Logger returns a logger to t's output at Debug when LogEnv is set, and nil (which
// the module's packages take as "discard") otherwise.
func Logger(t testing.TB) *slog.Logger {
	if os.Getenv(LogEnv) == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
