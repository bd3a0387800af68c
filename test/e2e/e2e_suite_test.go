// Package e2e holds shadowsync's end-to-end Ginkgo suites: the examples and the AWS IoT
// Device SDK for Python v1's samples as users run them, over every listener, on the
// embedded localiot and on mosquitto, and the failure suites (broker restarts, black
// holes, flapping links, hostile payloads, a 1,000-thing soak). They use real sockets
// on 127.0.0.1, real TLS and real SigV4. Set SHADOWSYNC_SOAK=1 for the long versions of
// the soaks.
package e2e_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/shadowsync/shadowsync/internal/mosquitto"
	"github.com/shadowsync/shadowsync/queue"
	"github.com/shadowsync/shadowsync/reconciler"
	"github.com/shadowsync/shadowsync/shadowclient"
	"github.com/shadowsync/shadowsync/shadowstate"
	"github.com/shadowsync/shadowsync/shadowtest"
	"github.com/shadowsync/shadowsync/transport"
)

func TestE2E(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "shadowsync end-to-end")
}

// soakEnv turns on the long soaks; .ci/run sets it in a step of its own.
const soakEnv = "SHADOWSYNC_SOAK"

// soak reports whether the long versions of the soaks run.
func soak() bool { return os.Getenv(soakEnv) != "" }

// scaled returns short in the default run and long under SHADOWSYNC_SOAK.
func scaled[T any](short, long T) T {
	if soak() {
		return long
	}
	return short
}

var _ = BeforeSuite(func() {
	SetDefaultEventuallyTimeout(20 * time.Second)
	SetDefaultEventuallyPollingInterval(20 * time.Millisecond)
	SetDefaultConsistentlyDuration(300 * time.Millisecond)
})

// logBuffer keeps the log lines of a spec so that it can check what was logged, and
// copies them to GinkgoWriter (shown when the spec fails, or with -v).
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	b.buf.Write(p)
	b.mu.Unlock()
	return GinkgoWriter.Write(p)
}

// String returns everything logged so far.
func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// newLogger returns a logger to GinkgoWriter at Info (Debug with SHADOWSYNC_TEST_LOG
// set), and the buffer that also keeps its lines.
func newLogger() (*slog.Logger, *logBuffer) {
	level := slog.LevelInfo
	if os.Getenv("SHADOWSYNC_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	b := &logBuffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: level})), b
}

// quietLogger logs warnings and errors only: for the soaks, where Info is thousands
// of lines.
func quietLogger() *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("SHADOWSYNC_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(GinkgoWriter, &slog.HandlerOptions{Level: level}))
}

// backend says where an Env's broker runs.
type backend struct {
	name     string
	listener shadowtest.Listener
	mosq     bool
}

func (b backend) String() string {
	if b.mosq {
		return "mosquitto (" + b.listener.String() + ")"
	}
	return "localiot (" + b.listener.String() + ")"
}

// backends are every listener of the embedded localiot, and mosquitto with the
// broker-agnostic shadow service (mosquitto's helper serves plain MQTT).
var backends = []backend{
	{name: "localiot", listener: shadowtest.Plain},
	{name: "localiot", listener: shadowtest.TLS},
	{name: "localiot", listener: shadowtest.WebSocket},
	{name: "mosquitto", listener: shadowtest.Plain, mosq: true},
}

// startEnv starts an Env for the current spec on b. On mosquitto it skips the spec,
// naming the package, when mosquitto is not installed (and fails instead under
// SHADOWSYNC_REQUIRE_PACKAGES=1).
func startEnv(b backend, opts shadowtest.Options) *shadowtest.Env {
	GinkgoHelper()
	opts.Listener = b.listener
	if b.mosq {
		opts.Broker = "mqtt://" + mosquitto.Start(GinkgoTB())
	}
	return shadowtest.Start(GinkgoT(), opts)
}

// dial connects cfg and closes the connection when the spec ends.
func dial(ctx context.Context, cfg transport.Config) *transport.Conn {
	GinkgoHelper()
	conn, err := transport.Dial(ctx, cfg)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func(ctx SpecContext) { Expect(conn.Close(ctx)).To(Succeed()) }, NodeTimeout(30*time.Second))
	return conn
}

// shadowOf returns a shadow handle on a new shadow client of conn, closed at the end.
func shadowOf(conn *transport.Conn, thing string) *shadowclient.Handle {
	GinkgoHelper()
	c, err := shadowclient.New(conn, shadowclient.Options{})
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func(ctx SpecContext) { Expect(c.Close(ctx)).To(Succeed()) }, NodeTimeout(30*time.Second))
	h, err := c.Shadow(thing, "")
	Expect(err).NotTo(HaveOccurred())
	return h
}

// things returns n thing names.
func things(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%04d", prefix, i)
	}
	return out
}

// outOfSync returns a line for each thing whose shadow is missing or has a delta, at
// most max lines, and how many there are: for Eventually over a fleet.
func outOfSync(env *shadowtest.Env, names []string) func() []string {
	return func() []string {
		var bad []string
		n := 0
		for _, name := range names {
			s, err := env.Shadow(name)
			switch {
			case err != nil:
				n++
				bad = append(bad, fmt.Sprintf("%s: %v", name, err))
			case !s.Exists:
				n++
				bad = append(bad, name+": no shadow")
			case shadowstate.Delta(s.Desired, s.Reported) != nil:
				n++
				bad = append(bad, fmt.Sprintf("%s: v%d delta %v", name, s.Version, shadowstate.Delta(s.Desired, s.Reported)))
			}
		}
		if len(bad) > 5 {
			bad = append(bad[:5], fmt.Sprintf("… %d out of sync in all", n))
		}
		return bad
	}
}

// fastRetries is a rate limiter for fleets under faults: retries from 20 ms to 1 s per
// shadow, with no overall cap, so that a fleet recovers within the spec's time.
func fastRetries() queue.RateLimiter[shadowstate.ID] {
	rl, err := queue.NewRateLimiter[shadowstate.ID](queue.RateLimitOptions{BaseDelay: 20 * time.Millisecond, MaxDelay: time.Second, QPS: 1e6, Burst: 1e6})
	Expect(err).NotTo(HaveOccurred())
	return rl
}

// runManager starts mgr until stop is called (or the spec ends) and waits until it is
// online. stop waits for Start to return nil.
func runManager(mgr *reconciler.Manager) (stop func()) {
	GinkgoHelper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			Eventually(done).WithTimeout(time.Minute).Should(Receive(BeNil()), "manager.Start did not return nil after its ctx ended")
		})
	}
	DeferCleanup(stop)
	online, cancelOnline := context.WithTimeout(ctx, 30*time.Second)
	defer cancelOnline()
	Expect(mgr.Conn().AwaitConnection(online)).To(Succeed())
	return stop
}

// lines returns the lines of text containing every one of words.
func lines(text string, words ...string) []string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if !slices.ContainsFunc(words, func(w string) bool { return !strings.Contains(l, w) }) {
			out = append(out, l)
		}
	}
	return out
}
