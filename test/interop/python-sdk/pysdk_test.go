//go:build unix

// Package pythonsdk runs the AWS IoT Device SDK for Python v1's own integration suite
// against `shadowsync serve` through run.sh, which says how.
package pythonsdk

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// The suite runs each of its tests in MutualAuth, ALPN and Websocket modes against a
// freshly built `shadowsync serve`; every test must pass or be skipped by the suite
// itself, except the expected failures run.sh lists with their reasons. It needs the
// SDK's source tree (SHADOWSYNC_PYTHON_SDK) and python3, and takes about 25 minutes:
// run it with -timeout 60m or more. PYSDK_WORK keeps the logs; run.sh lists the other
// variables (PYSDK_TESTS, PYSDK_RUNS, PYSDK_RTT_MS, ...).
func TestPythonSDKIntegrationSuite(t *testing.T) {
	if os.Getenv("SHADOWSYNC_PYTHON_SDK") == "" {
		t.Skip("SHADOWSYNC_PYTHON_SDK is not set: it names a checkout of github.com/aws/aws-iot-device-sdk-python, whose integration suite this test runs")
	}
	for _, tool := range []string{"python3", "bash", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found: run.sh needs it", tool)
		}
	}
	ctx := t.Context()
	if deadline, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		// Leave time to stop the script's processes and report.
		ctx, cancel = context.WithDeadline(ctx, deadline.Add(-30*time.Second))
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, "bash", "run.sh")
	env := os.Environ()
	if os.Getenv("PYSDK_WORK") == "" {
		env = append(env, "PYSDK_WORK="+t.TempDir())
	}
	cmd.Env = env
	// The script starts servers and Python processes; on timeout the whole process
	// group goes.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	t.Logf("run.sh output:\n%s", out.String())
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("run.sh did not finish before the test's deadline (run with -timeout 60m or more): %v", err)
	case errors.As(err, &exit) && exit.ExitCode() == 2:
		t.Fatalf("run.sh refused to run: %v", err)
	case err != nil:
		t.Fatalf("the suite failed where shadowsync serve should pass (see the table above): %v", err)
	}
}
