package e2e_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/shadowsync/shadowsync/reconciler"
	"github.com/shadowsync/shadowsync/shadowstate"
	"github.com/shadowsync/shadowsync/shadowtest"
	"github.com/shadowsync/shadowsync/transport"
)

// Heater is the typed device of the hostile-payload specs.
type Heater struct {
	Target float64 `json:"target" jsonschema:"minimum=5,maximum=30"`
	On     bool    `json:"on"`
}

// hostile are payloads no well-behaved client sends: wrong types, huge, deeply
// nested, invalid UTF-8, empty, not JSON.
var hostile = map[string][]byte{
	"empty":            {},
	"not JSON":         []byte("hello {"),
	"a JSON string":    []byte(`"state"`),
	"an array":         []byte(`[1,2,3]`),
	"state a string":   []byte(`{"state":"on"}`),
	"desired a number": []byte(`{"state":{"desired":5}}`),
	"version a string": []byte(`{"state":{"desired":{"target":20}},"version":"x"}`),
	"deeply nested":    []byte(`{"state":{"desired":{"a":` + strings.Repeat(`{"a":`, 40) + `1` + strings.Repeat(`}`, 40) + `}}}`),
	"huge (100 KiB)":   []byte(`{"state":{"desired":{"blob":"` + strings.Repeat("x", 100*1024) + `"}}}`),
	"invalid UTF-8":    []byte("{\"state\":{\"desired\":{\"name\":\"\xff\xfe\xfd\"}}}"),
	"trailing garbage": []byte(`{"state":{"desired":{"target":20}}} {}`),
}

// operator is a raw MQTT client with operator rights that publishes whatever it is
// given, bypassing shadowsync's own checks.
func operator(endpoint string) mqtt.Client {
	GinkgoHelper()
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(strings.Replace(endpoint, "mqtt://", "tcp://", 1)).
		SetClientID("hostile-operator").SetAutoReconnect(false).SetOrderMatters(false))
	tok := c.Connect()
	Expect(tok.WaitTimeout(10 * time.Second)).To(BeTrue())
	Expect(tok.Error()).NotTo(HaveOccurred())
	DeferCleanup(func() { c.Disconnect(100) })
	return c
}

var _ = Describe("Malformed and hostile payloads", func() {
	for _, b := range []backend{backends[0], backends[3]} { // localiot and mosquitto, plain
		Context("on "+b.String(), func() {
			It("are refused with clear errors on every subscribed topic, and nothing crashes", func(ctx SpecContext) {
				log, logs := newLogger()
				env := startEnv(b, shadowtest.Options{Logger: log})

				// The app under attack: a heater controller reporting its status, and a
				// command handler of its own on the same connection.
				mgr, err := reconciler.NewManager(env.AppConfig(), reconciler.Options{Logger: log})
				Expect(err).NotTo(HaveOccurred())
				_, err = reconciler.Register(mgr, reconciler.ControllerOptions{Things: []string{"heater-1"}, StatusField: "status"},
					reconciler.ReconcilerFunc[Heater](func(_ context.Context, req reconciler.Request[Heater]) (reconciler.Result, error) {
						*req.Reported = Heater{Target: req.Desired.Target, On: req.Desired.On}
						return reconciler.Result{}, nil
					}))
				Expect(err).NotTo(HaveOccurred())
				runManager(mgr)
				var commands atomic.Int32
				_, err = mgr.Conn().Subscribe(ctx, "devices/+/cmd", transport.HandlerFunc(func(_ context.Context, m transport.Message) {
					var cmd struct{ Action string }
					if err := json.Unmarshal(m.Payload, &cmd); err != nil {
						panic("bad command: " + err.Error()) // careless app code: the router must survive it
					}
					commands.Add(1)
				}), transport.QoS(1))
				Expect(err).NotTo(HaveOccurred())

				Expect(env.SetDesired(ctx, "heater-1", map[string]any{"target": 21, "on": true})).To(Succeed())
				Eventually(env.Shadow).WithArguments("heater-1").Should(And(shadowtest.BeInSync(), shadowtest.HaveReported("target", 21)))

				op := operator(env.Endpoints().Plain)
				replies := make(chan mqtt.Message, 100)
				tok := op.Subscribe("$aws/things/heater-1/shadow/update/+", 1, func(_ mqtt.Client, m mqtt.Message) { replies <- m })
				Expect(tok.WaitTimeout(10 * time.Second)).To(BeTrue())

				By("publishing each hostile payload as an update request: the service answers each with a rejection")
				for name, payload := range hostile {
					Expect(op.Publish("$aws/things/heater-1/shadow/update", 1, false, payload).WaitTimeout(10 * time.Second)).To(BeTrue())
					var m mqtt.Message
					Eventually(replies).Should(Receive(&m), name)
					var rej shadowstate.Error
					Expect(m.Topic()).To(HaveSuffix("/rejected"), "%s: %s", name, m.Payload())
					Expect(json.Unmarshal(m.Payload(), &rej)).To(Succeed())
					Expect(rej.Code).To(BeNumerically(">=", 400), name)
					Expect(rej.Message).NotTo(BeEmpty(), name)
					GinkgoWriter.Printf("%-18s → %d %s\n", name, rej.Code, rej.Message)
				}
				Expect(env.Shadow("heater-1")).To(And(shadowtest.BeInSync(), shadowtest.HaveDesired("target", 21)), "no hostile update changed the shadow")

				By("publishing them to get, delete, a named shadow, the reply topics and the app's own topic")
				for _, payload := range hostile {
					for _, topic := range []string{
						"$aws/things/heater-1/shadow/get",
						"$aws/things/heater-1/shadow/name/x/update",
						"$aws/things/heater-1/shadow/update/delta",
						"$aws/things/heater-1/shadow/update/documents",
						"$aws/things/heater-1/shadow/update/accepted",
						"$aws/things/heater-1/shadow/get/accepted",
						"devices/heater-1/cmd",
					} {
						Expect(op.Publish(topic, 1, false, payload).WaitTimeout(10 * time.Second)).To(BeTrue())
					}
				}

				By("sending a desired state that is valid JSON but wrong for the device type")
				Expect(env.SetDesired(ctx, "heater-1", map[string]any{"target": "hot"})).To(Succeed())
				Eventually(env.Shadow).WithArguments("heater-1").Should(And(
					shadowtest.HaveReported("status.ok", false),
					shadowtest.HaveReported("status.error", ContainSubstring("target")),
					shadowtest.HaveReported("target", 21), // the device keeps its last good state
				))
				Eventually(logs.String).Should(ContainSubstring("desired state refused"))
				Expect(lines(logs.String(), "desired state refused", "heater-1")).NotTo(BeEmpty(), "the log names the thing")

				By("everything still works: the service, the controller and the app's handler")
				Expect(mgr.Conn().IsOnline()).To(BeTrue())
				Expect(env.SetDesired(ctx, "heater-1", map[string]any{"target": 25})).To(Succeed())
				Eventually(env.Shadow).WithArguments("heater-1").Should(And(
					shadowtest.BeInSync(), shadowtest.HaveReported("target", 25), shadowtest.HaveReported("status.ok", true)))
				Expect(op.Publish("devices/heater-1/cmd", 1, false, []byte(`{"Action":"boost"}`)).WaitTimeout(10 * time.Second)).To(BeTrue())
				Eventually(commands.Load).Should(BeNumerically(">=", 1))
				Expect(logs.String()).To(ContainSubstring("panic"), "the panicking handler was recovered and logged")
			}, SpecTimeout(2*time.Minute))
		})
	}

	It("a payload over AWS's 128 KiB limit closes the sender's connection only", func(ctx SpecContext) {
		env := startEnv(backends[0], shadowtest.Options{})
		mgr, err := reconciler.NewManager(env.AppConfig(), reconciler.Options{})
		Expect(err).NotTo(HaveOccurred())
		_, err = reconciler.Echo(mgr, "bystander")
		Expect(err).NotTo(HaveOccurred())
		runManager(mgr)

		op := operator(env.Endpoints().Plain)
		op.Publish("$aws/things/bystander/shadow/update", 1, false, make([]byte, 200*1024)).WaitTimeout(5 * time.Second)
		Eventually(op.IsConnectionOpen).Should(BeFalse())

		Expect(env.SetDesired(ctx, "bystander", map[string]any{"ok": true})).To(Succeed())
		Eventually(env.Shadow).WithArguments("bystander").Should(shadowtest.BeInSync())
	}, SpecTimeout(time.Minute))
})
