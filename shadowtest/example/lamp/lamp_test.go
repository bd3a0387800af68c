package lamp_test

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/shadowsync/shadowsync/shadowtest"
)

var _ = Describe("A lamp", func() {
	It("fades to the desired brightness and reports it", func(ctx SpecContext) {
		Expect(env.SetDesired(ctx, "lamp-fade", map[string]any{"on": true, "brightness": 80})).To(Succeed())

		Eventually(env.Shadow).WithArguments("lamp-fade").Should(And(
			shadowtest.BeInSync(),
			shadowtest.HaveReported("on", true),
			shadowtest.HaveReported("brightness", 80),
			shadowtest.HaveReported("status.ok", true),
		))
	})

	It("refuses a brightness out of range and keeps its last good state", func(ctx SpecContext) {
		Expect(env.SetDesired(ctx, "lamp-refuse", map[string]any{"on": true, "brightness": 40})).To(Succeed())
		Eventually(env.Shadow).WithArguments("lamp-refuse").Should(shadowtest.BeInSync())

		Expect(env.SetDesired(ctx, "lamp-refuse", map[string]any{"brightness": 150})).To(Succeed())

		// The refusal is reported, naming the field...
		Eventually(env.Shadow).WithArguments("lamp-refuse").Should(And(
			shadowtest.HaveReported("status.ok", false),
			shadowtest.HaveReported("status.error", ContainSubstring("brightness")),
		))
		// ...and the lamp stays as it was.
		Consistently(env.Shadow).WithArguments("lamp-refuse").WithTimeout(300 * time.Millisecond).
			Should(shadowtest.HaveReported("brightness", 40))
	})

	It("picks up a change made as soon as the broker is back", func(ctx SpecContext) {
		Expect(env.SetDesired(ctx, "lamp-restart", map[string]any{"on": true, "brightness": 20})).To(Succeed())
		Eventually(env.Shadow).WithArguments("lamp-restart").Should(shadowtest.BeInSync())

		Expect(env.Restart()).To(Succeed()) // every client is cut off; shadows are kept
		Expect(env.SetDesired(ctx, "lamp-restart", map[string]any{"brightness": 60})).To(Succeed())

		Eventually(env.Shadow).WithArguments("lamp-restart").Should(And(
			shadowtest.BeInSync(),
			shadowtest.HaveReported("brightness", 60),
		))
	})

	It("catches up with a change made while it was switched off", func(ctx SpecContext) {
		dev := shadowtest.StartDevice(GinkgoT(), newLamp("lamp-off"))
		Expect(env.SetDesired(ctx, "lamp-off", map[string]any{"on": true, "brightness": 20})).To(Succeed())
		Eventually(env.Shadow).WithArguments("lamp-off").Should(shadowtest.BeInSync())

		Expect(dev.Stop()).To(Succeed())
		Expect(env.SetDesired(ctx, "lamp-off", map[string]any{"brightness": 60})).To(Succeed())
		Consistently(env.Shadow).WithArguments("lamp-off").WithTimeout(200 * time.Millisecond).
			Should(shadowtest.HaveReported("brightness", 20)) // nobody is there to act on it
		Expect(dev.Start()).To(Succeed())

		Eventually(env.Shadow).WithArguments("lamp-off").Should(And(
			shadowtest.BeInSync(),
			shadowtest.HaveReported("brightness", 60),
		))
	})
})
