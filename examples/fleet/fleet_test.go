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

func startProcess(t *testing.T, bin, endpoint, group, mirror string, n int) *process {
	t.Helper()
	cmd := exec.Command(bin, "--endpoint", endpoint, "--prefix", "lamp-", "--group", group, "--mirror", mirror,
		"--client-id", fmt.Sprintf("fleet-%d", n), "--resync", "2s")
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
	ctx := t.Context()
	conn, err := transport.Dial(ctx, transport.Config{Endpoint: endpoint, MaxPublishRate: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	app, err := shadowclient.New(conn, shadowclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close(context.WithoutCancel(ctx))

	desire := func(round int, during func(i int)) {
		sem := make(chan struct{}, 64)
		var wg sync.WaitGroup
		for i := range things {
			if during != nil {
				during(i)
			}
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				h, _ := app.Shadow(fmt.Sprintf("lamp-%04d", i), "")
				if _, err := h.UpdateDesired(ctx, map[string]any{"round": round, "n": i}); err != nil {
					t.Errorf("round %d, lamp-%04d: %v", round, i, err)
				}
			})
		}
		wg.Wait()
	}
	converged := func(round int, within time.Duration) {
		t.Helper()
		deadline := time.Now().Add(within)
		for {
			behind := 0
			for i := range things {
				r, _ := reported(fmt.Sprintf("lamp-%04d", i))
				if fmt.Sprint(r["round"]) != fmt.Sprint(round) {
					behind++
				}
			}
			if behind == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: %d of %d things not converged after %v", round, behind, things, within)
			}
			time.Sleep(200 * time.Millisecond) // the polling interval of a wait bounded by within
		}
	}

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
