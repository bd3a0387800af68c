package reconciler_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/shadowsync/shadowsync/internal/faultproxy"
	"github.com/shadowsync/shadowsync/internal/testserver"
	"github.com/shadowsync/shadowsync/localiot"
	"github.com/shadowsync/shadowsync/reconciler"
	"github.com/shadowsync/shadowsync/shadowclient"
	"github.com/shadowsync/shadowsync/shadowstate"
	"github.com/shadowsync/shadowsync/transport"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const wait = 15 * time.Second

// fastConfig is a transport configuration for tests: no publish rate cap, quick
// reconnects.
func fastConfig(endpoint string) transport.Config {
	return transport.Config{
		Endpoint:       endpoint,
		MaxPublishRate: -1,
		Backoff:        transport.ExponentialBackoff(20*time.Millisecond, 200*time.Millisecond, 0),
	}
}

// testLogger logs to the test's output when SHADOWSYNC_TEST_LOG is set.
func testLogger(t *testing.T) *slog.Logger { return testserver.Logger(t) }

// run starts m and stops it when the test ends, checking that Start returns nil.
func run(t *testing.T, m *reconciler.Manager) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Start: %v", err)
			}
		case <-time.After(wait):
			t.Error("Start did not return after its ctx ended")
		}
	})
}

// app is a shadow client acting as an application that sets desired state.
func app(t *testing.T, endpoint string) *shadowclient.Client {
	t.Helper()
	return appWith(t, fastConfig(endpoint))
}

// appWith is app on a connection configured by cfg.
func appWith(t *testing.T, cfg transport.Config) *shadowclient.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	conn, err := transport.Dial(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	c, err := shadowclient.New(conn, shadowclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		_ = c.Close(ctx)
		_ = conn.Close(ctx)
	})
	return c
}

func shadow(t *testing.T, c *shadowclient.Client, thing string) *shadowclient.Handle {
	t.Helper()
	h, err := c.Shadow(thing, "")
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// recv waits for a value on ch and returns it, failing the test as what did not
// happen after wait.
func recv[V any](t *testing.T, ch <-chan V, what string) V {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(wait):
		t.Fatalf("%s within %v", what, wait)
	}
	var zero V
	return zero
}

// eventually polls check until it returns nil, failing the test with its last error
// after timeout.
func eventually(t *testing.T, timeout time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not true after %v: %v", timeout, err)
		}
		time.Sleep(20 * time.Millisecond) // the polling interval of a bounded wait
	}
}

// consistently checks, every 20 ms for d, that check keeps returning nil, and fails
// the test at the first error. It is for "nothing more happens" checks, after the
// test has shown that the thing which must not recur did happen once.
func consistently(t *testing.T, d time.Duration, check func() error) {
	t.Helper()
	for deadline := time.Now().Add(d); ; {
		if err := check(); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			return
		}
		time.Sleep(20 * time.Millisecond) // the polling interval of a bounded wait
	}
}

// reconciles returns how many reconciles of m ended with result (the "result" label
// of shadowsync_reconciles_total: success, conflict, report_failed, ...). A reconcile
// is counted once its outcome (retry, requeue, forget) has been acted on.
func reconciles(t *testing.T, m *reconciler.Manager, result string) float64 {
	t.Helper()
	return counterWith(t, m.Registry(), "shadowsync_reconciles_total", map[string]string{"result": result})
}

// counterWith returns the sum of counter name's series in reg whose labels include
// every one of labels (0 when there is none yet).
func counterWith(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, c := range mf.GetMetric() {
			have := map[string]string{}
			for _, l := range c.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue series
				}
			}
			n += c.GetCounter().GetValue()
		}
	}
	return n
}

// reportedOf reads the shadow's reported state as the service holds it.
func reportedOf(srv *localiot.Server, thing string) (shadowstate.Object, error) {
	s, err := srv.Shadow(shadowstate.ID{Thing: thing})
	if err != nil {
		return nil, err
	}
	if !s.Exists {
		return nil, fmt.Errorf("%s has no shadow", thing)
	}
	return s.Reported, nil
}

// behindProxy starts a fault proxy in front of srv's plain listener and returns it
// with a fast config that connects through it, and a channel that gets a value each
// time that connection goes offline.
func behindProxy(t *testing.T, srv *localiot.Server) (*faultproxy.Proxy, transport.Config, <-chan struct{}) {
	t.Helper()
	proxy, err := faultproxy.Start(strings.TrimPrefix(srv.Endpoints().Plain, "mqtt://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	offline := make(chan struct{}, 8)
	cfg := fastConfig("mqtt://" + proxy.Addr())
	cfg.OnOffline = func(error) { offline <- struct{}{} }
	return proxy, cfg, offline
}

// inParallel runs fn(0) … fn(n-1) in goroutines of their own, waits for them all, and
// fails the test with the errors they returned.
func inParallel(t *testing.T, n int, fn func(i int) error) {
	t.Helper()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = fn(i) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}
