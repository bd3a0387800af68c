package shadowtest_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/onsi/gomega"
	"go.uber.org/goleak"

	"github.com/shadowsync/shadowsync/jobstate"
	"github.com/shadowsync/shadowsync/reconciler"
	"github.com/shadowsync/shadowsync/shadowclient"
	"github.com/shadowsync/shadowsync/shadowstate"
	"github.com/shadowsync/shadowsync/shadowtest"
	"github.com/shadowsync/shadowsync/transport"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Each listener carries a device's report and an app's desired state to the service,
// and the matchers see them.
func TestEnvOnEveryListener(t *testing.T) {
	for _, l := range []shadowtest.Listener{shadowtest.TLS, shadowtest.Plain, shadowtest.WebSocket} {
		t.Run(l.String(), func(t *testing.T) {
			g := gomega.NewWithT(t)
			env := shadowtest.Start(t, shadowtest.Options{Listener: l})
			th, err := env.CreateThing("lamp-1")
			g.Expect(err).NotTo(gomega.HaveOccurred())

			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			conn, err := transport.Dial(ctx, env.DeviceConfig(th))
			g.Expect(err).NotTo(gomega.HaveOccurred())
			defer conn.Close(context.Background())
			client, err := shadowclient.New(conn, shadowclient.Options{})
			g.Expect(err).NotTo(gomega.HaveOccurred())
			defer client.Close(context.Background())
			h, err := client.Shadow("lamp-1", "")
			g.Expect(err).NotTo(gomega.HaveOccurred())

			g.Expect(env.SetDesired(ctx, "lamp-1", map[string]any{"on": true, "level": 80})).To(gomega.Succeed())
			_, err = h.UpdateReported(ctx, map[string]any{"on": true, "level": 80.0, "colors": []string{"red"}})
			g.Expect(err).NotTo(gomega.HaveOccurred())

			g.Eventually(env.Shadow).WithArguments("lamp-1").Should(gomega.And(
				shadowtest.BeInSync(),
				shadowtest.HaveReported("level", 80),
				shadowtest.HaveReported("colors.0", "red"),
				shadowtest.HaveDesired("on", true),
				shadowtest.HaveVersionAtLeast(2),
			))
			doc, err := h.Get(ctx)
			g.Expect(err).NotTo(gomega.HaveOccurred())
			g.Expect(doc).To(shadowtest.HaveReported("level", gomega.BeNumerically(">", 79)))
		})
	}
}

// A thing's certificate reaches its own shadow only, as on AWS IoT.
func TestThingCertificateIsConfinedToItsShadow(t *testing.T) {
	g := gomega.NewWithT(t)
	env := shadowtest.Start(t, shadowtest.Options{})
	a, err := env.CreateThing("a")
	g.Expect(err).NotTo(gomega.HaveOccurred())
	_, err = env.CreateThing("b")
	g.Expect(err).NotTo(gomega.HaveOccurred())
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	conn, err := transport.Dial(ctx, env.DeviceConfig(a))
	g.Expect(err).NotTo(gomega.HaveOccurred())
	defer conn.Close(context.Background())
	_, err = conn.Subscribe(ctx, "$aws/things/b/shadow/update/accepted", transport.HandlerFunc(func(context.Context, transport.Message) {}))
	g.Expect(err).To(gomega.MatchError(transport.ErrSubscribeRefused))
}

// Shadows survive Restart, in memory and on disk.
func TestRestartKeepsShadows(t *testing.T) {
	for name, dir := range map[string]bool{"memory": false, "bolt": true} {
		t.Run(name, func(t *testing.T) {
			g := gomega.NewWithT(t)
			opts := shadowtest.Options{Listener: shadowtest.Plain}
			if dir {
				opts.DataDir = t.TempDir()
			}
			env := shadowtest.Start(t, opts)
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			g.Expect(env.SetDesired(ctx, "kept", map[string]any{"n": 1})).To(gomega.Succeed())
			before := env.Endpoints()
			g.Expect(env.Restart()).To(gomega.Succeed())
			g.Expect(env.Endpoints()).To(gomega.Equal(before))
			g.Expect(env.Shadow("kept")).To(gomega.And(shadowtest.HaveDesired("n", 1), shadowtest.HaveVersionAtLeast(1)))
			g.Expect(env.SetDesired(ctx, "kept", map[string]any{"n": 2})).To(gomega.Succeed()) // the app reconnects
			g.Expect(env.Shadow("kept")).To(gomega.And(shadowtest.HaveDesired("n", 2), shadowtest.HaveVersionAtLeast(2)))
		})
	}
}

func TestMatcherMessagesShowTheShadowAndItsDelta(t *testing.T) {
	var s shadowstate.Shadow
	s.ID = shadowstate.ID{Thing: "thermo-1"}
	s.Exists, s.Version = true, 7
	g := gomega.NewWithT(t)
	g.Expect(json.Unmarshal([]byte(`{"target":22,"mode":"heat"}`), &s.Desired)).To(gomega.Succeed())
	g.Expect(shadowstate.Unmarshal([]byte(`{"target":22,"mode":"off","temp":20.5}`), &s.Reported)).To(gomega.Succeed())

	tests := []struct {
		name    string
		matcher interface {
			Match(any) (bool, error)
			FailureMessage(any) string
		}
		match bool
		want  []string
	}{
		{"reported equal", shadowtest.HaveReported("temp", 20.5), true, nil},
		{"reported differs", shadowtest.HaveReported("mode", "heat"), false,
			[]string{`expected reported.mode to equal "heat", but it is "off"`, "shadow thermo-1 at version 7", `delta:    {"mode":"heat"}`}},
		{"reported absent", shadowtest.HaveReported("humidity", 40), false, []string{"but it is absent"}},
		{"desired nested absent", shadowtest.HaveDesired("target.x", 1), false, []string{"desired.target.x", "absent"}},
		{"in sync", shadowtest.BeInSync(), false, []string{"expected the shadow to be in sync (no delta)", `reported: {"mode":"off","target":22,"temp":20.5}`}},
		{"version", shadowtest.HaveVersionAtLeast(8), false, []string{"expected version 8 or later, but it is 7"}},
		{"version ok", shadowtest.HaveVersionAtLeast(7), true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, err := tt.matcher.Match(s)
			if err != nil || ok != tt.match {
				t.Fatalf("Match = %v, %v; want %v", ok, err, tt.match)
			}
			if ok {
				return
			}
			msg := tt.matcher.FailureMessage(s)
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message lacks %q:\n%s", w, msg)
				}
			}
		})
	}
	if _, err := shadowtest.BeInSync().Match("not a shadow"); err == nil || !strings.Contains(err.Error(), "want a shadowstate.Shadow") {
		t.Errorf("wrong type: %v", err)
	}
	missing := shadowstate.Shadow{ID: shadowstate.ID{Thing: "ghost"}}
	if ok, _ := shadowtest.BeInSync().Match(missing); ok || !strings.Contains(shadowtest.BeInSync().FailureMessage(missing), "shadow ghost does not exist") {
		t.Error("a missing shadow must not be in sync, and the message must say it does not exist")
	}
}

// A device's job handler, on the thing's own certificate, runs a job the test
// creates; the matchers see the execution's outcome.
func TestJobHelpers(t *testing.T) {
	g := gomega.NewWithT(t)
	env := shadowtest.Start(t, shadowtest.Options{})
	th, err := env.CreateThing("dev-1")
	g.Expect(err).NotTo(gomega.HaveOccurred())
	type update struct {
		Version string `json:"version" jsonschema:"required"`
	}
	shadowtest.StartDevice(t, func() (*reconciler.Manager, error) {
		m, err := reconciler.NewManager(env.DeviceConfig(th), reconciler.Options{})
		if err != nil {
			return nil, err
		}
		_, err = reconciler.RegisterJobs(m, reconciler.JobOptions{Things: []string{"dev-1"}}, reconciler.JobHandlerFunc[update](
			func(ctx context.Context, job reconciler.Job[update]) (reconciler.JobResult, error) {
				return reconciler.JobResult{StatusDetails: map[string]string{"installed": job.Document.Version}}, nil
			}))
		return m, err
	})
	_, err = env.CreateJob(t.Context(), "fw-1", map[string]any{"version": "1.2"}, "dev-1")
	g.Expect(err).NotTo(gomega.HaveOccurred())
	g.Eventually(env.JobExecution).WithArguments("fw-1", "dev-1").WithTimeout(20 * time.Second).Should(gomega.And(
		shadowtest.HaveJobStatus(jobstate.Succeeded),
		shadowtest.HaveJobStatusDetail("installed", "1.2"),
	))
	_, err = env.CreateJob(t.Context(), "fw-2", map[string]any{"size": 3}, "dev-1")
	g.Expect(err).NotTo(gomega.HaveOccurred())
	g.Eventually(env.JobExecution).WithArguments("fw-2", "dev-1").WithTimeout(20 * time.Second).Should(gomega.And(
		shadowtest.HaveJobStatus(jobstate.Rejected),
		shadowtest.HaveJobStatusDetail("error", gomega.ContainSubstring("version")),
	))
	x, err := env.JobExecution("fw-2", "dev-1")
	g.Expect(err).NotTo(gomega.HaveOccurred())
	m := shadowtest.HaveJobStatus(jobstate.Succeeded)
	g.Expect(m.Match(x)).To(gomega.BeFalse())
	g.Expect(m.FailureMessage(x)).To(gomega.ContainSubstring("REJECTED"))
}
