package e2e_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"go.uber.org/goleak"

	"github.com/shadowsync/shadowsync/internal/faultproxy"
	"github.com/shadowsync/shadowsync/reconciler"
	"github.com/shadowsync/shadowsync/shadowtest"
)

// fleet is a fleet of echo devices served by several managers, each on its own
// connection through one fault-injecting proxy, and an app that writes desired state
// directly to the broker.
type fleet struct {
	env   *shadowtest.Env
	proxy *faultproxy.Proxy
	names []string
	stops []func()
}

func startFleet(n, managers int) *fleet {
	GinkgoHelper()
	f := &fleet{names: things("fleet-", n)}
	f.env = shadowtest.Start(GinkgoT(), shadowtest.Options{Listener: shadowtest.Plain, Logger: quietLogger()})
	var err error
	f.proxy, err = faultproxy.Start(strings.TrimPrefix(f.env.Endpoints().Plain, "mqtt://"))
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(f.proxy.Close)
	per := (n + managers - 1) / managers
	for m := 0; m < n; m += per {
		cfg := f.env.AppConfig()
		cfg.Endpoint = "mqtt://" + f.proxy.Addr()
		mgr, err := reconciler.NewManager(cfg, reconciler.Options{Logger: quietLogger()})
		Expect(err).NotTo(HaveOccurred())
		echoFleet(mgr, f.names[m:min(m+per, n)])
		f.stops = append(f.stops, runManager(mgr))
	}
	return f
}

// cut cuts every connection through the proxy at random intervals in [min, max)
// until stop is closed, at most 1,000 times; it returns how many cuts it made.
func (f *fleet) cut(stop <-chan struct{}, lo, hi time.Duration) <-chan int {
	done := make(chan int, 1)
	go func() {
		n := 0
		defer func() { done <- n }()
		for n < 1000 {
			select {
			case <-stop:
				return
			case <-time.After(lo + rand.N(hi-lo)):
			}
			f.proxy.CutOnce()
			n++
		}
	}()
	return done
}

// stop stops the managers, the proxy and the broker.
func (f *fleet) stop() {
	for _, s := range f.stops {
		s()
	}
	Expect(f.proxy.Close()).To(Succeed())
	Expect(f.env.Stop()).To(Succeed())
}

// faultRun writes desired state across the fleet for d while cutting every
// connection at random every lo..hi, then checks that every thing converges with no
// accepted update lost.
func faultRun(ctx context.Context, f *fleet, d, lo, hi time.Duration) {
	GinkgoHelper()
	w := startWriter(ctx, f.env, f.names, 8, 1_000_000, true)
	DeferCleanup(w.stopWriting)
	stopCuts := make(chan struct{})
	cuts := f.cut(stopCuts, lo, hi)
	select {
	case <-time.After(d):
	case <-ctx.Done():
	}
	close(stopCuts)
	w.stopWriting()
	n := <-cuts
	GinkgoWriter.Printf("%d things: %d writes accepted, %d failed, %d cuts in %v\n", len(f.names), w.count.Load(), w.failed.Load(), n, d)
	Expect(n).To(BeNumerically(">=", 2), "the links were cut")

	// Every thing gets one last change, as an app would make after the storm.
	var wg sync.WaitGroup
	for i, name := range f.names {
		wg.Go(func() {
			defer GinkgoRecover()
			Eventually(f.env.SetDesired).WithContext(ctx).WithArguments(name, map[string]any{"final": i}).Should(Succeed())
		})
		if i%32 == 31 {
			wg.Wait()
		}
	}
	wg.Wait()
	Expect(lost(f.env, w.snapshot())).To(BeEmpty())
	Eventually(outOfSync(f.env, f.names)).WithContext(ctx).WithTimeout(time.Minute).Should(BeEmpty())
	for i, name := range f.names {
		Expect(f.env.Shadow(name)).To(shadowtest.HaveReported("final", i))
	}
}

var _ = Describe("Fleets under faults", func() {
	It(fmt.Sprintf("a flapping network: links to 200 things cut every 1–3 s for %v; all converge and no goroutine leaks", scaled(12*time.Second, time.Minute)), func(ctx SpecContext) {
		leaks := goleak.IgnoreCurrent()
		f := startFleet(200, 4)
		faultRun(ctx, f, scaled(12*time.Second, time.Minute), time.Second, 3*time.Second)
		f.stop()
		Eventually(func() error { return goleak.Find(leaks) }).WithTimeout(30 * time.Second).Should(Succeed())
	}, SpecTimeout(scaled(2*time.Minute, 5*time.Minute)))

	It(fmt.Sprintf("a 1,000-thing soak: random desired changes and random disconnects for %v end with reported equal to desired everywhere", scaled(10*time.Second, 5*time.Minute)), func(ctx SpecContext) {
		f := startFleet(1000, 4)
		faultRun(ctx, f, scaled(10*time.Second, 5*time.Minute), 500*time.Millisecond, 4*time.Second)
	}, SpecTimeout(scaled(3*time.Minute, 10*time.Minute)))
})
