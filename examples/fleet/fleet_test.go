package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shadowsync/shadowsync/internal/mosquitto"
	"github.com/shadowsync/shadowsync/internal/testserver"
	"github.com/shadowsync/shadowsync/localiot"
	"github.com/shadowsync/shadowsync/shadowclient"
	"github.com/shadowsync/shadowsync/shadowstate"
	"github.com/shadowsync/shadowsync/transport"
)

const things = 2000

// process is one fleet process, a separate OS process running the built example.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func buildFleet(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "fleet")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// startProcess starts fleet process n; extra flags override the defaults.
func startProcess(t *testing.T, bin, endpoint, group, mirror string, n int, extra ...string) *process {
	t.Helper()
	args := append([]string{"--endpoint", endpoint, "--prefix", "lamp-", "--group", group, "--mirror", mirror,
		"--client-id", fmt.Sprintf("fleet-%d", n), "--resync", "2s"}, extra...)
	cmd := exec.Command(bin, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		var once sync.Once
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "ready:") {
				once.Do(func() { close(ready) })
			}
		}
	}()
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.stop(t, syscall.SIGTERM) })
	select {
	case <-ready:
	case <-p.done:
		t.Fatalf("fleet process %d exited before it was ready", n)
	case <-time.After(30 * time.Second):
		t.Fatalf("fleet process %d not ready in 30s", n)
	}
	return p
}

// stop signals the process and waits for it to exit.
func (p *process) stop(t *testing.T, sig syscall.Signal) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Errorf("fleet process did not exit within 20s of %v", sig)
	}
}

// driver is the application side of a fleet test: it changes the desired state of
// the things and checks what the fleet reported.
type driver struct {
	t        *testing.T
	things   int
	app      *shadowclient.Client
	reported func(thing string) (shadowstate.Object, error)
}

func newDriver(t *testing.T, endpoint string, things int, reported func(thing string) (shadowstate.Object, error)) *driver {
	ctx := t.Context()
	conn, err := transport.Dial(ctx, transport.Config{Endpoint: endpoint, MaxPublishRate: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.WithoutCancel(ctx)) })
	app, err := shadowclient.New(conn, shadowclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = app.Close(context.WithoutCancel(ctx)) })
	return &driver{t: t, things: things, app: app, reported: reported}
}

// desire sets every thing's desired round, calling during(i) before thing i's update.
func (d *driver) desire(round int, during func(i int)) {
	ctx := d.t.Context()
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for i := range d.things {
		if during != nil {
			during(i)
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			h, _ := d.app.Shadow(fmt.Sprintf("lamp-%04d", i), "")
			if _, err := h.UpdateDesired(ctx, map[string]any{"round": round, "n": i}); err != nil {
				d.t.Errorf("round %d, lamp-%04d: %v", round, i, err)
			}
		})
	}
	wg.Wait()
}

// converged waits, within a bound, until every thing reports round, and returns how
// long that took.
func (d *driver) converged(round int, within time.Duration) time.Duration {
	d.t.Helper()
	start := time.Now()
	deadline := start.Add(within)
	for {
		behind := 0
		for i := range d.things {
			r, _ := d.reported(fmt.Sprintf("lamp-%04d", i))
			if fmt.Sprint(r["round"]) != fmt.Sprint(round) {
				behind++
			}
		}
		if behind == 0 {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("round %d: %d of %d things not converged after %v", round, behind, d.things, within)
		}
		time.Sleep(200 * time.Millisecond) // the polling interval of a wait bounded by within
	}
}

// runFleet drives things through rounds of desired changes with three fleet processes
// in one group, killing one in the middle of a round and starting it again, and checks
// that every thing ends reporting its last desired state.
func runFleet(t *testing.T, endpoint, mirror string, reported func(thing string) (shadowstate.Object, error)) {
	const group = "echoers"
	bin := buildFleet(t)
	procs := make([]*process, 3)
	for i := range procs {
		procs[i] = startProcess(t, bin, endpoint, group, mirror, i)
	}
	d := newDriver(t, endpoint, things, reported)
	desire, converged := d.desire, d.converged

	desire(1, nil)
	converged(1, 60*time.Second)

	// Round 2: process 1 is killed (no goodbye) halfway through, and started again.
	// An event the broker had already handed to it is lost with it (transport keeps
	// no persistent session); the survivors' periodic re-read recovers the things they
	// have seen before, and any other converges at its next change — round 3, which
	// must leave every thing level with its last desired state.
	desire(2, func(i int) {
		if i == things/2 {
			procs[1].stop(t, syscall.SIGKILL)
		}
	})
	procs[1] = startProcess(t, bin, endpoint, group, mirror, 1)
	desire(3, nil)
	converged(3, 60*time.Second)
}

func TestFleetOfThreeProcessesOnLocalIoT(t *testing.T) {
	if os.Getenv("SHADOWSYNC_SOAK") == "" {
		t.Skip("set SHADOWSYNC_SOAK=1 to run: three processes drive 2,000 things for about a minute (.ci/run does)")
	}
	srv := testserver.Start(t, localiot.Options{Limits: localiot.Limits{MaxSubscriptions: -1}})
	runFleet(t, srv.Endpoints().Plain, "", func(thing string) (shadowstate.Object, error) {
		s, err := srv.Shadow(shadowstate.ID{Thing: thing})
		return s.Reported, err
	})
}

func TestFleetOfThreeProcessesOnMosquitto(t *testing.T) {
	if os.Getenv("SHADOWSYNC_SOAK") == "" {
		t.Skip("set SHADOWSYNC_SOAK=1 to run: three processes drive 2,000 things for about a minute (.ci/run does)")
	}
	addr := mosquitto.Start(t)
	store := &localiot.MemoryStore{}
	const mirror = "shadowsync/events"
	testserver.StartShadowService(t, localiot.BrokerShadowOptions{Broker: "mqtt://" + addr, Store: store, EventMirror: mirror})
	// mosquitto 2.0 never delivers topics beginning with '$' to shared
	// subscriptions, so the shadow service mirrors its events under a plain prefix and
	// the group watches the mirror.
	runFleet(t, "mqtt://"+addr, mirror, func(thing string) (shadowstate.Object, error) {
		s, err := store.Load(shadowstate.ID{Thing: thing})
		return s.Reported, err
	})
}

// With persistent sessions a fleet process killed in the middle of a round loses
// nothing: what it had received and not reconciled is still unacknowledged, so the
// broker delivers it again, with what arrived for it while it was down, when the
// process comes back with its client ID. Nothing else could recover those events: the
// periodic re-read is off, and the restarted process knows no shadow to re-read. The
// reconciles are slowed down so that the killed process always holds a backlog.
func TestFleetKilledProcessGetsItsEventsBack(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the example and runs two processes for about ten seconds")
	}
	const n = 600
	srv := testserver.Start(t, localiot.Options{Limits: localiot.Limits{MaxSubscriptions: -1}})
	bin := buildFleet(t)
	// localiot's broker sends a client up to 8,192 unacknowledged messages, so the
	// processes may hold more than the default 64 (sized for AWS IoT's 100).
	flags := []string{"--resync", "0", "--persistent-session", "--max-unacked", "4000", "--workers", "4", "--work-time", "20ms"}
	procs := make([]*process, 2)
	for i := range procs {
		procs[i] = startProcess(t, bin, srv.Endpoints().Plain, "echoers", "", i, flags...)
	}
	d := newDriver(t, srv.Endpoints().Plain, n, func(thing string) (shadowstate.Object, error) {
		s, err := srv.Shadow(shadowstate.ID{Thing: thing})
		return s.Reported, err
	})
	d.desire(1, nil)
	t.Logf("round 1 converged %v after its last change", d.converged(1, 60*time.Second))

	d.desire(2, func(i int) {
		if i == n/2 {
			procs[1].stop(t, syscall.SIGKILL)
		}
	})
	procs[1] = startProcess(t, bin, srv.Endpoints().Plain, "echoers", "", 1, flags...)
	t.Logf("round 2 converged %v after the killed process was back", d.converged(2, 60*time.Second))
}
