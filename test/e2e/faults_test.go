package e2e_test

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/shadowsync/shadowsync/internal/faultproxy"
	"github.com/shadowsync/shadowsync/reconciler"
	"github.com/shadowsync/shadowsync/shadowstate"
	"github.com/shadowsync/shadowsync/shadowtest"
	"github.com/shadowsync/shadowsync/transport"
)

// echoFleet registers a controller that mirrors desired into reported for names, with
// quick retries and a few workers: the device of the failure suites.
func echoFleet(mgr *reconciler.Manager, names []string) {
	GinkgoHelper()
	_, err := reconciler.Register(mgr, reconciler.ControllerOptions{
		Name: "echo", Things: names, RateLimiter: fastRetries(), MaxConcurrentReconciles: 4,
	}, reconciler.ReconcilerFunc[shadowstate.Object](func(_ context.Context, req reconciler.Request[shadowstate.Object]) (reconciler.Result, error) {
		*req.Reported = shadowstate.Merge(*req.Reported, req.Delta)
		return reconciler.Result{}, nil
	}))
	Expect(err).NotTo(HaveOccurred())
}

// writer acts as an app that keeps changing desired state: each of its goroutines
// owns some things and sets {"seq": n} on them — in turn, or picking one at random —
// n counting up, and records the last seq the service accepted for each thing. Writes
// that fail (the broker is down) are simply not recorded.
type writer struct {
	mu       sync.Mutex
	accepted map[string]int64
	count    atomic.Int64
	failed   atomic.Int64
	stop     chan struct{}
	wg       sync.WaitGroup
}

// startWriter starts goroutines writers over names, each write bounded by 2 s, each
// goroutine making at most maxWrites writes; stopWriting ends them.
func startWriter(ctx context.Context, env *shadowtest.Env, names []string, goroutines, maxWrites int, random bool) *writer {
	w := &writer{accepted: make(map[string]int64), stop: make(chan struct{})}
	for g := range goroutines {
		var mine []string
		for i := g; i < len(names); i += goroutines {
			mine = append(mine, names[i])
		}
		w.wg.Go(func() {
			defer GinkgoRecover()
			for seq := int64(1); seq <= int64(maxWrites); seq++ {
				select {
				case <-w.stop:
					return
				case <-ctx.Done():
					return
				default:
				}
				thing := mine[int(seq-1)%len(mine)]
				if random {
					thing = mine[rand.IntN(len(mine))]
				}
				wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				err := env.SetDesired(wctx, thing, map[string]any{"seq": seq, "value": rand.IntN(100)})
				cancel()
				if err != nil {
					w.failed.Add(1)
					continue
				}
				w.mu.Lock()
				w.accepted[thing] = seq
				w.mu.Unlock()
				w.count.Add(1)
			}
		})
	}
	return w
}

func (w *writer) snapshot() map[string]int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return maps.Clone(w.accepted)
}

func (w *writer) stopWriting() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	w.wg.Wait()
}

// lost returns the accepted updates that the service no longer holds: a thing whose
// stored desired seq is below the last one accepted for it.
func lost(env *shadowtest.Env, accepted map[string]int64) []string {
	var out []string
	for thing, seq := range accepted {
		s, err := env.Shadow(thing)
		if err != nil {
			out = append(out, fmt.Sprintf("%s: %v", thing, err))
			continue
		}
		got, _ := s.Desired["seq"].(interface{ Int64() (int64, error) })
		var n int64
		if got != nil {
			n, _ = got.Int64()
		}
		if n < seq {
			out = append(out, fmt.Sprintf("%s: desired seq %d stored, %d was accepted", thing, n, seq))
		}
	}
	return out
}

var _ = Describe("Failures", func() {
	DescribeTable("the broker killed and restarted mid-run: every thing converges and no accepted update is lost",
		func(ctx SpecContext, onDisk bool) {
			opts := shadowtest.Options{Listener: shadowtest.Plain, Logger: quietLogger()}
			if onDisk {
				opts.DataDir = GinkgoT().TempDir()
			}
			env := shadowtest.Start(GinkgoT(), opts)
			names := things("restart-", 50)
			mgr, err := reconciler.NewManager(env.AppConfig(), reconciler.Options{Logger: quietLogger()})
			Expect(err).NotTo(HaveOccurred())
			echoFleet(mgr, names)
			runManager(mgr)

			w := startWriter(ctx, env, names, 4, 10000, false)
			DeferCleanup(w.stopWriting)
			for restart := 1; restart <= 2; restart++ {
				target := w.count.Load() + 150
				Eventually(w.count.Load).WithContext(ctx).Should(BeNumerically(">=", target), "writes accepted before restart %d", restart)
				before := w.snapshot()
				versions := map[string]int64{}
				for _, n := range names {
					s, _ := env.Shadow(n)
					versions[n] = s.Version
				}
				Expect(env.Restart()).To(Succeed())
				GinkgoWriter.Printf("restart %d: %d writes accepted so far, %d failed\n", restart, w.count.Load(), w.failed.Load())

				Expect(lost(env, before)).To(BeEmpty(), "updates accepted before restart %d", restart)
				for _, n := range names {
					Expect(env.Shadow(n)).To(shadowtest.HaveVersionAtLeast(versions[n]), "version of %s went back across restart %d", n, restart)
				}
			}
			target := w.count.Load() + 150 // the app and the devices are back
			Eventually(w.count.Load).WithContext(ctx).Should(BeNumerically(">=", target))
			w.stopWriting()

			Expect(lost(env, w.snapshot())).To(BeEmpty())
			Eventually(outOfSync(env, names)).WithContext(ctx).Should(BeEmpty())
		},
		Entry("with shadows in memory", false, SpecTimeout(2*time.Minute)),
		Entry("with shadows on disk (BoltStore), reopened by the new broker", true, SpecTimeout(2*time.Minute)),
	)

	It("a black-holed connection: keep-alive notices, the device reconnects and converges", func(ctx SpecContext) {
		log, _ := newLogger()
		env := shadowtest.Start(GinkgoT(), shadowtest.Options{Logger: log}) // mutual TLS
		th, err := env.CreateThing("holed")
		Expect(err).NotTo(HaveOccurred())
		proxy, err := faultproxy.Start(strings.TrimPrefix(env.Endpoints().TLS, "mqtts://"))
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(proxy.Close)

		cfg := env.DeviceConfig(th)
		cfg.Endpoint = "mqtts://" + proxy.Addr()
		cfg.KeepAlive = time.Second
		cfg.ConnectTimeout = 2 * time.Second // attempts made while the hole lasts give up quickly
		offline := make(chan error, 10)
		cfg.OnOffline = func(err error) { offline <- err }
		mgr, err := reconciler.NewManager(cfg, reconciler.Options{Logger: log})
		Expect(err).NotTo(HaveOccurred())
		echoFleet(mgr, []string{"holed"})
		runManager(mgr)

		Expect(env.SetDesired(ctx, "holed", map[string]any{"level": 1})).To(Succeed())
		Eventually(env.Shadow).WithArguments("holed").Should(shadowtest.HaveReported("level", 1))

		proxy.BlackHole()
		holed := time.Now()
		Expect(env.SetDesired(ctx, "holed", map[string]any{"level": 2})).To(Succeed()) // the device cannot hear it
		var cause error
		Eventually(offline).WithTimeout(5 * time.Second).Should(Receive(&cause))
		Expect(cause).To(MatchError(transport.ErrKeepAlive))
		Expect(time.Since(holed)).To(BeNumerically("<", 4*time.Second), "a 1 s keep-alive detects a black hole within 1.5 s of silence, plus a ping")
		Consistently(env.Shadow).WithArguments("holed").Should(shadowtest.HaveReported("level", 1))

		proxy.Restore()
		Eventually(mgr.Conn().IsOnline).Should(BeTrue())
		Eventually(env.Shadow).WithArguments("holed").Should(And(shadowtest.BeInSync(), shadowtest.HaveReported("level", 2)))
		Expect(proxy.Accepted()).To(BeNumerically(">=", 2), "the device reconnected through the proxy")
	}, SpecTimeout(time.Minute))
})
