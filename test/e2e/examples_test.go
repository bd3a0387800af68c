package e2e_test

import (
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gbytes"
	"github.com/onsi/gomega/gexec"

	"github.com/shadowsync/shadowsync/localiot"
	"github.com/shadowsync/shadowsync/shadowtest"
)

// The example programs, tested as a user tests a device program: built, started
// against shadowtest's local AWS IoT with a device certificate, driven by an app
// that sets desired state, checked on the shadow, and stopped with SIGTERM.
var _ = Describe("The example programs", Ordered, func() {
	var bin string
	BeforeAll(func(ctx SpecContext) {
		args := []string{"build", "-o", GinkgoT().TempDir()}
		if raceEnabled {
			args = append(args, "-race")
		}
		bin = args[2]
		cmd := exec.CommandContext(ctx, "go", append(args, "./examples/thermostat", "./examples/echo")...)
		cmd.Dir = filepath.Join("..", "..")
		cmd.Stdout, cmd.Stderr = GinkgoWriter, GinkgoWriter
		Expect(cmd.Run()).To(Succeed(), "go build of the examples")
	}, NodeTimeout(3*time.Minute))

	start := func(name string, args ...string) *gexec.Session {
		GinkgoHelper()
		s, err := gexec.Start(exec.Command(filepath.Join(bin, name), args...), GinkgoWriter, GinkgoWriter)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() {
			s.Signal(syscall.SIGTERM)
			Eventually(s).WithTimeout(20 * time.Second).Should(gexec.Exit(0))
		})
		return s
	}

	It("thermostat: heats to the desired temperature, reports it, and stops cleanly on SIGTERM", func(ctx SpecContext) {
		env := shadowtest.Start(GinkgoT(), shadowtest.Options{})
		th, err := env.CreateThing("living-room")
		Expect(err).NotTo(HaveOccurred())
		s := start("thermostat", "--endpoint", env.Endpoints().TLS, "--ca", th.CAFile, "--cert", th.CertFile, "--key", th.KeyFile,
			"--client-id", "living-room", "--thing", "living-room", "--step-every", "10ms") // a thing's certificate connects as the thing
		Eventually(s).Should(gbytes.Say("connected"))

		Expect(env.SetDesired(ctx, "living-room", map[string]any{"target": 23, "mode": "heat"})).To(Succeed())
		Eventually(env.Shadow).WithArguments("living-room").Should(And(
			shadowtest.BeInSync(),
			shadowtest.HaveReported("temp", 23),
			Not(shadowtest.HaveReported("active", true)), // the heater is off again
		))
		Eventually(s).Should(gbytes.Say(`living-room: at 23.0°C, heat idle`))

		Expect(env.SetDesired(ctx, "living-room", map[string]any{"target": 40})).To(Succeed()) // beyond the schema's maximum
		Consistently(env.Shadow).WithArguments("living-room").Should(shadowtest.HaveReported("target", 23))
	}, SpecTimeout(time.Minute))

	It("echo: mirrors the desired state of every thing it is given", func(ctx SpecContext) {
		env := shadowtest.Start(GinkgoT(), shadowtest.Options{})
		dir := env.Certs().Dir
		cert := func(ext string) string { return filepath.Join(dir, localiot.OperatorCertName+ext) }
		names := things("lamp-", 20)
		args := []string{"--endpoint", env.Endpoints().TLS, "--ca", filepath.Join(dir, localiot.CACertName+".pem"),
			"--cert", cert(".pem"), "--key", cert(".key")}
		for _, n := range names {
			args = append(args, "--thing", n)
		}
		s := start("echo", args...)
		Eventually(s).Should(gbytes.Say("echoing 20 thing"))

		for i, n := range names {
			Expect(env.SetDesired(ctx, n, map[string]any{"color": []string{"red", "green"}[i%2], "i": i})).To(Succeed())
		}
		Eventually(outOfSync(env, names)).Should(BeEmpty())
		Expect(env.Shadow(names[7])).To(shadowtest.HaveReported("color", "green"))
	}, SpecTimeout(time.Minute))
})
