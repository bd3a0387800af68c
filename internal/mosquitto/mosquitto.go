// Package mosquitto starts Debian's mosquitto broker for tests that check shadowsync
// against a broker other than the embedded one. It is internal: a test helper, not API.
package mosquitto

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// RequireEnv is the environment variable under which a missing mosquitto fails a test
// instead of skipping it; .ci/run sets it after installing the package.
const RequireEnv = "SHADOWSYNC_REQUIRE_PACKAGES"

// Start runs a mosquitto broker on a free port of 127.0.0.1 for the rest of the test
// and returns its address (host:port). It allows anonymous clients. Without the
// mosquitto binary the test is skipped, naming the Debian package to install, unless
// RequireEnv is set, in which case it fails.
func Start(t testing.TB) string {
	t.Helper()
	return StartBroker(t).Addr
}

// Broker is a mosquitto process that a test can stop and start again on the same
// address, as a broker restarted by its operator.
type Broker struct {
	// Addr is where the broker listens (host:port on 127.0.0.1).
	Addr string

	t      testing.TB
	bin    string
	conf   string
	cancel context.CancelFunc
	cmd    *exec.Cmd
	logs   chan string
}

// StartBroker is Start returning the Broker, for tests that stop and restart it.
func StartBroker(t testing.TB) *Broker {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		for _, p := range []string{"/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"} {
			if _, serr := os.Stat(p); serr == nil {
				bin, err = p, nil
				break
			}
		}
	}
	if err != nil {
		msg := "mosquitto not found: install Debian's package with `apt-get install mosquitto`"
		if os.Getenv(RequireEnv) != "" {
			t.Fatalf("%s (%s is set, so this fails instead of skipping)", msg, RequireEnv)
		}
		t.Skip(msg)
	}

	// Ask the kernel for a free port, then hand it to mosquitto. Another process could
	// take it in between; the readiness check below then fails with a clear message.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_, port, _ := net.SplitHostPort(addr)
	ln.Close()

	dir := t.TempDir()
	conf := filepath.Join(dir, "mosquitto.conf")
	text := fmt.Sprintf("listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stdout\nlog_type error\nlog_type warning\nlog_type notice\nmax_queued_messages 100000\n", port)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	b := &Broker{Addr: addr, t: t, bin: bin, conf: conf}
	b.run()
	t.Cleanup(b.Stop)
	return b
}

// Stop stops the broker (SIGKILL) and waits for the process to exit. Stopping a
// stopped broker does nothing.
func (b *Broker) Stop() {
	if b.cmd == nil {
		return
	}
	b.cancel()
	_ = b.cmd.Wait()
	b.cmd = nil
}

// Restart starts the stopped broker again on the same address, with no state kept
// (persistence is off), and waits until it listens.
func (b *Broker) Restart() {
	b.t.Helper()
	b.Stop()
	b.run()
}

// run starts the process and waits until it listens on b.Addr.
func (b *Broker) run() {
	t := b.t
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, b.bin, "-c", b.conf)
	out, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start mosquitto: %v", err)
	}
	logs := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case logs <- sc.Text():
			default:
			}
		}
		close(logs)
	}()
	b.cancel, b.cmd, b.logs = cancel, cmd, logs

	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", b.Addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			var lines []string
			for {
				select {
				case l, ok := <-logs:
					if ok {
						lines = append(lines, l)
						continue
					}
				default:
				}
				break
			}
			t.Fatalf("mosquitto did not listen on %s within 10s: %v; its log:\n%s", b.Addr, err, strings.Join(lines, "\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
