package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/shadowsync/shadowsync/reconciler"
	"github.com/shadowsync/shadowsync/shadowstate"
	"github.com/shadowsync/shadowsync/shadowtest"
	"github.com/shadowsync/shadowsync/transport"
)

// The samples of the AWS IoT Device SDK for Python v1, as scenarios: what each sample
// does, done with shadowsync over every listener of the embedded localiot and on
// mosquitto. Devices connect as their thing (over TLS, with the thing's certificate and
// its policy); apps with operator rights.
var _ = Describe("The seed SDK's samples", func() {
	for _, b := range backends {
		Context("on "+b.String(), func() {
			var env *shadowtest.Env
			BeforeEach(func() {
				env = startEnv(b, shadowtest.Options{ThingTopics: []string{"sdk/test/${thing}"}})
			})

			It("basicPubSub: a subscriber receives every QoS 0 and QoS 1 message published to its topic, in order", func(ctx SpecContext) {
				th, err := env.CreateThing("pubsub")
				Expect(err).NotTo(HaveOccurred())
				conn := dial(ctx, env.DeviceConfig(th))

				got := make(chan string, 20)
				_, err = conn.Subscribe(ctx, "sdk/test/pubsub", transport.HandlerFunc(func(_ context.Context, m transport.Message) {
					got <- string(m.Payload)
				}), transport.QoS(1))
				Expect(err).NotTo(HaveOccurred())

				var want []string
				for i := 1; i <= 10; i++ {
					payload, _ := json.Marshal(map[string]any{"message": "Hello World!", "sequence": i})
					want = append(want, string(payload))
					Expect(conn.Publish(ctx, "sdk/test/pubsub", payload, transport.QoS(byte(i%2)))).To(Succeed())
				}
				var received []string
				for range want {
					var m string
					Eventually(got).Should(Receive(&m))
					received = append(received, m)
				}
				Expect(received).To(Equal(want))
			}, SpecTimeout(time.Minute))

			It("basicShadow: the delta listener reports each desired state the updater sets, and the shadow ends in sync", func(ctx SpecContext) {
				th, err := env.CreateThing("Bot")
				Expect(err).NotTo(HaveOccurred())
				device := shadowOf(dial(ctx, env.DeviceConfig(th)), "Bot")
				updater := shadowOf(dial(ctx, env.AppConfig()), "Bot")

				reported := make(chan string, 10)
				_, err = device.OnDelta(ctx, func(ctx context.Context, d *shadowstate.DeltaMessage) {
					if _, err := device.UpdateReported(ctx, d.State); err != nil {
						GinkgoWriter.Printf("listener: report failed: %v\n", err)
						return
					}
					reported <- fmt.Sprint(d.State["property"])
				})
				Expect(err).NotTo(HaveOccurred())

				for i := 1; i <= 5; i++ {
					_, err := updater.UpdateDesired(ctx, map[string]int{"property": i})
					Expect(err).NotTo(HaveOccurred())
					Eventually(reported).Should(Receive(Equal(fmt.Sprint(i))))
				}
				Eventually(env.Shadow).WithArguments("Bot").Should(And(
					shadowtest.BeInSync(),
					shadowtest.HaveReported("property", 5),
					shadowtest.HaveVersionAtLeast(10),
				))
				doc, err := updater.Get(ctx)
				Expect(err).NotTo(HaveOccurred())
				Expect(doc).To(shadowtest.BeInSync())
			}, SpecTimeout(time.Minute))

			It("ThingShadowEcho: reconciler.Echo mirrors whatever is desired into reported", func(ctx SpecContext) {
				th, err := env.CreateThing("echo-1")
				Expect(err).NotTo(HaveOccurred())
				log, _ := newLogger()
				mgr, err := reconciler.NewManager(env.DeviceConfig(th), reconciler.Options{Logger: log})
				Expect(err).NotTo(HaveOccurred())
				_, err = reconciler.Echo(mgr, "echo-1")
				Expect(err).NotTo(HaveOccurred())
				runManager(mgr)

				desired := map[string]any{"color": "blue", "levels": []int{1, 2, 3}, "nested": map[string]any{"on": true}}
				Expect(env.SetDesired(ctx, "echo-1", desired)).To(Succeed())
				Eventually(env.Shadow).WithArguments("echo-1").Should(And(
					shadowtest.BeInSync(),
					shadowtest.HaveReported("levels", []int{1, 2, 3}),
					shadowtest.HaveReported("nested.on", true),
				))

				Expect(env.SetDesired(ctx, "echo-1", map[string]any{"color": "red", "nested": nil})).To(Succeed())
				Eventually(env.Shadow).WithArguments("echo-1").Should(And(
					shadowtest.BeInSync(),
					shadowtest.HaveReported("color", "red"),
				))
			}, SpecTimeout(time.Minute))
		})
	}
})
