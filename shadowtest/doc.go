// Package shadowtest helps users test their own device logic, the way
// controller-runtime's envtest helps test Kubernetes controllers: one call starts a
// local AWS IoT (localiot's broker and Device Shadow service, with plain, mutual-TLS
// and WebSocket listeners on loopback) for a test or a whole Ginkgo suite, and stops
// it when that ends. An Env creates things with certificates, gives transport
// configurations for devices and apps, sets desired state as an app would, and reads
// shadows as the service stores them. Gomega matchers — HaveReported, HaveDesired,
// BeInSync, HaveVersionAtLeast — check shadows and, when they fail, show the shadow
// and its delta.
//
//	var env *shadowtest.Env
//	var _ = BeforeSuite(func() { env = shadowtest.Start(GinkgoT(), shadowtest.Options{}) })
//
//	It("reaches the desired brightness", func(ctx SpecContext) {
//		Expect(env.SetDesired(ctx, "lamp-1", map[string]any{"brightness": 80})).To(Succeed())
//		Eventually(env.Shadow).WithArguments("lamp-1").Should(shadowtest.BeInSync())
//	})
//
// docs/testing.md walks through a complete suite.
package shadowtest
