package main

import (
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shadowsync/shadowsync/internal/testserver"
	"github.com/shadowsync/shadowsync/localiot"
	"github.com/shadowsync/shadowsync/shadowclient"
	"github.com/shadowsync/shadowsync/shadowstate"
	"github.com/shadowsync/shadowsync/transport"
)

// cli runs shadowsync with args and stdin, bounded by 20 s, and returns its exit code,
// stdout and stderr.
func cli(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil && !errors.As(err, new(*exec.ExitError)) {
		t.Fatalf("shadowsync %s: %v", strings.Join(args, " "), err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errOut.String()
}

// mustCLI runs shadowsync and fails the test unless it exits 0; it returns stdout.
func mustCLI(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	code, out, errOut := cli(t, stdin, args...)
	if code != 0 {
		t.Fatalf("shadowsync %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// appShadow returns the shadow of thing (and name) as another client on endpoint
// sees it: an app changing desired state, or a device reporting.
func appShadow(t *testing.T, endpoint, thing, name string) *shadowclient.Handle {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	conn, err := transport.Dial(ctx, transport.Config{Endpoint: endpoint})
	if err != nil {
		t.Fatal(err)
	}
	client, err := shadowclient.New(conn, shadowclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		client.Close(ctx)
		conn.Close(ctx)
	})
	h, err := client.Shadow(thing, name)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// getDocument runs `get --json` and decodes the document.
func getDocument(t *testing.T, args ...string) shadowstate.Document {
	t.Helper()
	out := mustCLI(t, "", append([]string{"get", "--json"}, args...)...)
	var doc shadowstate.Document
	if err := shadowstate.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("get --json printed %q: %v", out, err)
	}
	return doc
}

// asJSON renders v as compact JSON, for comparisons.
func asJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestShadowCommandUsageErrors(t *testing.T) {
	ep := testserver.Start(t, localiot.Options{}).Endpoints().Plain
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"get"}, "--thing is required"},
		{[]string{"watch", "--endpoint", ep}, "--thing is required"},
		{[]string{"delete", "--thing", "bad name"}, `thing name "bad name"`},
		{[]string{"get", "--thing", "T", "--shadow", "bad/name"}, "shadow name"},
		{[]string{"get", "--thing", "T", "extra"}, `unexpected argument "extra"`},
		{[]string{"get", "--thing", "T", "--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"get", "--thing", "T", "--cert", "c.pem"}, "--cert and --key go together"},
		{[]string{"get", "--thing", "T", "--timeout", "0s"}, "--timeout must be positive"},
		{[]string{"get", "--thing", "T", "--endpoint", "ftp://x"}, "invalid config"},
		{[]string{"get", "--thing", "T", "--endpoint", "mqtts://127.0.0.1:1", "--ca", "/nonexistent/ca.pem"}, "CAFile"},
		{[]string{"update", "--thing", "T", "--set", "a=1"}, "exactly one of --desired and --reported"},
		{[]string{"update", "--thing", "T", "--desired", "--reported", "--set", "a=1"}, "exactly one of --desired and --reported"},
		{[]string{"update", "--thing", "T", "--desired"}, "give the state once"},
		{[]string{"update", "--thing", "T", "--desired", `{"a":1}`, "--set", "b=2"}, "give the state once"},
		{[]string{"update", "--thing", "T", "--desired", `{"a":1}`, `{"b":2}`}, "give the state once"},
		{[]string{"update", "--thing", "T", "--desired", `[1,2]`}, "must be a JSON object"},
		{[]string{"update", "--thing", "T", "--desired", `{"a":`}, "is not JSON"},
		{[]string{"update", "--thing", "T", "--desired", "--set", "novalue"}, "want KEY.PATH=VALUE"},
		{[]string{"update", "--thing", "T", "--desired", "--set", "a..b=1"}, "empty key"},
		{[]string{"update", "--thing", "T", "--desired", "--set", "a=1", "--version", "-1"}, "--version must not be negative"},
	} {
		code, out, errOut := cli(t, "", tc.args...)
		if code != 2 || !strings.Contains(errOut, tc.want) {
			t.Errorf("shadowsync %s: exit %d, stderr:\n%s\nstdout:\n%s\nwant exit 2 and %q", strings.Join(tc.args, " "), code, errOut, out, tc.want)
		}
	}
	// Help is not an error.
	for _, cmd := range []string{"get", "update", "delete", "watch"} {
		if code, out, _ := cli(t, "", "help", cmd); code != 0 || !strings.Contains(out, "-endpoint URL") || !strings.Contains(out, "-thing NAME") {
			t.Errorf("help %s: exit %d:\n%s", cmd, code, out)
		}
	}
}

func TestSetPaths(t *testing.T) {
	for _, tc := range []struct {
		sets []string
		want string
	}{
		{[]string{"color=red"}, `{"color":"red"}`},
		{[]string{"a.b.c=1", "a.b.d=x", "a.e=true"}, `{"a":{"b":{"c":1,"d":"x"},"e":true}}`},
		{[]string{"n=null", "f=1.50", "s=\"42\"", "t=01"}, `{"f":1.50,"n":null,"s":"42","t":"01"}`},
		{[]string{"list=[1,2]", "obj={\"k\":1}", "obj.j=2"}, `{"list":[1,2],"obj":{"j":2,"k":1}}`},
		{[]string{"empty=", "eq=a=b"}, `{"empty":"","eq":"a=b"}`},
		{[]string{"x=1", "x=2"}, `{"x":2}`},
	} {
		got, err := setPaths(tc.sets)
		if err != nil {
			t.Errorf("%q: %v", tc.sets, err)
			continue
		}
		if diff := cmp.Diff(tc.want, asJSON(t, got)); diff != "" {
			t.Errorf("%q (-want +got):\n%s", tc.sets, diff)
		}
	}
	for _, sets := range [][]string{{"a=1", "a.b=2"}, {"a=null", "a.b=2"}, {"=1"}, {".a=1"}, {"a.=1"}, {"a"}} {
		if _, err := setPaths(sets); !errors.Is(err, errUsage) {
			t.Errorf("%q: %v, want a usage error", sets, err)
		}
	}
}

// The endpoint and credential flags work as with AWS IoT: mutual TLS with a thing's
// certificate, whose policy then confines the command to that thing's shadow.
func TestShadowCommandsOverMutualTLS(t *testing.T) {
	dir := t.TempDir()
	certs, err := localiot.EnsureCerts(dir, "Dev-1")
	if err != nil {
		t.Fatal(err)
	}
	ep := testserver.Start(t, localiot.Options{TLS: certs.TLSListener("")}).Endpoints().TLS
	creds := []string{"--endpoint", ep, "--ca", filepath.Join(dir, "ca.pem"),
		"--cert", filepath.Join(dir, "Dev-1.pem"), "--key", filepath.Join(dir, "Dev-1.key"), "--client-id", "Dev-1", "--keepalive", "30s"}

	out := mustCLI(t, "", append([]string{"update", "--thing", "Dev-1", "--reported", "--set", "fw=1.2"}, creds...)...)
	if out != "updated reported state of shadow \"Dev-1\": version 1\n" {
		t.Errorf("update printed %q", out)
	}
	if doc := getDocument(t, append([]string{"--thing", "Dev-1"}, creds...)...); asJSON(t, doc.State.Reported) != `{"fw":1.2}` {
		t.Errorf("reported %s", asJSON(t, doc.State.Reported))
	}
	code, _, errOut := cli(t, "", append([]string{"get", "--thing", "Dev-2"}, creds...)...)
	if code != 1 || !strings.Contains(errOut, "refused") {
		t.Errorf("get of another thing's shadow with Dev-1's certificate: exit %d, stderr:\n%s", code, errOut)
	}
}

func TestConnectFailureIsReported(t *testing.T) {
	code, _, errOut := cli(t, "", "get", "--thing", "T", "--endpoint", "mqtt://127.0.0.1:1", "--timeout", "300ms")
	if code != 1 || !strings.Contains(errOut, "dial mqtt://127.0.0.1:1") || !strings.Contains(errOut, "connection refused") {
		t.Errorf("exit %d, stderr:\n%s", code, errOut)
	}
}
