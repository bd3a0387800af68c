package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqttc "github.com/eclipse/paho.mqtt.golang"
)

// jobsServe starts `shadowsync serve` with plain MQTT and the HTTPS listener, and
// returns the banner's endpoints and the flags that point the jobs commands at it.
func jobsServe(t *testing.T) (eps map[string]string, conn []string) {
	t.Helper()
	dir := t.TempDir()
	p := start(t, []string{"AWS_ACCESS_KEY_ID=AKIDLOCAL", "AWS_SECRET_ACCESS_KEY=local-secret", "AWS_SESSION_TOKEN="},
		"serve", "--mqtt", "127.0.0.1:0", "--https", "127.0.0.1:0", "--certs", dir)
	eps = p.banner(t)
	return eps, []string{"--endpoint", eps["https"], "--ca", filepath.Join(dir, "ca.pem"),
		"--access-key-id", "AKIDLOCAL", "--secret-access-key", "local-secret"}
}

// jobsCLI runs `shadowsync jobs SUB conn... args...`.
func jobsCLI(t *testing.T, conn []string, sub string, args ...string) (int, string, string) {
	t.Helper()
	return cli(t, "", append(append([]string{"jobs", sub}, conn...), args...)...)
}

func mustJobsCLI(t *testing.T, conn []string, sub string, args ...string) string {
	t.Helper()
	return mustCLI(t, "", append(append([]string{"jobs", sub}, conn...), args...)...)
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Every jobs subcommand against `shadowsync serve --https`, with a device on MQTT that
// hears of the job the CLI created.
func TestJobsCommands(t *testing.T) {
	eps, conn := jobsServe(t)
	device := mqttClient(t, eps["mqtt"], "lamp-1", nil)
	next := make(chan string, 4)
	if tok := device.Subscribe("$aws/things/lamp-1/jobs/notify-next", 1, func(_ mqttc.Client, m mqttc.Message) {
		next <- string(m.Payload())
	}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	doc := writeFile(t, "doc.json", `{"operation":"upgrade","version":"2.0"}`)

	out := mustJobsCLI(t, conn, "create", "--job-id", "fw-1", "--thing", "lamp-1", "--thing", "lamp-2", "--document", doc,
		"--in-progress-timeout", "10m", "--description", "firmware 2.0")
	if out != "created job fw-1 on lamp-1, lamp-2\n" {
		t.Errorf("create printed %q", out)
	}
	select {
	case msg := <-next:
		if !strings.Contains(msg, `"jobId":"fw-1"`) || !strings.Contains(msg, `"jobDocument":{"operation":"upgrade","version":"2.0"}`) {
			t.Errorf("notify-next after create: %s", msg)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the device got no notify-next within 10s of jobs create")
	}

	out = mustJobsCLI(t, conn, "list")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 2 || !strings.HasPrefix(lines[0], "JOB") ||
		!strings.HasPrefix(lines[1], "fw-1") || !strings.Contains(lines[1], "IN_PROGRESS") {
		t.Errorf("list printed:\n%s", out)
	}
	var jobs []jobJSON
	if err := json.Unmarshal([]byte(mustJobsCLI(t, conn, "list", "--json")), &jobs); err != nil || len(jobs) != 1 || jobs[0].JobID != "fw-1" || jobs[0].Status != "IN_PROGRESS" {
		t.Errorf("list --json: %v, %+v", err, jobs)
	}
	var execs []executionJSON
	if err := json.Unmarshal([]byte(mustJobsCLI(t, conn, "list", "--job", "fw-1", "--json")), &execs); err != nil || len(execs) != 2 ||
		execs[0].ThingName != "lamp-1" || execs[1].ThingName != "lamp-2" || execs[0].Status != "QUEUED" {
		t.Errorf("list --job --json: %v, %+v", err, execs)
	}
	if out := mustJobsCLI(t, conn, "list", "--thing", "lamp-2"); !strings.Contains(out, "fw-1") || !strings.Contains(out, "lamp-2") || !strings.Contains(out, "QUEUED") {
		t.Errorf("list --thing printed:\n%s", out)
	}
	if out := mustJobsCLI(t, conn, "list", "--thing", "lamp-2", "--status", "SUCCEEDED", "--json"); out != "[]\n" {
		t.Errorf("list --thing --status SUCCEEDED --json printed %q, want []", out)
	}

	out = mustJobsCLI(t, conn, "describe", "--job", "fw-1")
	for _, want := range []string{"job          fw-1\n", "status       IN_PROGRESS\n", "description  firmware 2.0\n", "targets      lamp-1, lamp-2\n",
		`document     {"operation":"upgrade","version":"2.0"}` + "\n", "timeout      10m0s in progress\n", "executions   2 QUEUED\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("describe printed:\n%s\nwant a line %q", out, want)
		}
	}
	var e executionJSON
	if err := json.Unmarshal([]byte(mustJobsCLI(t, conn, "describe", "--job", "fw-1", "--thing", "lamp-1", "--json")), &e); err != nil ||
		e.Status != "QUEUED" || e.VersionNumber != 1 || e.ThingName != "lamp-1" || e.QueuedAt == nil {
		t.Errorf("describe --thing --json: %v, %+v", err, e)
	}

	code, _, errOut := jobsCLI(t, conn, "delete", "--job", "fw-1")
	if code != 1 || !strings.Contains(errOut, "InvalidStateTransitionException") || !strings.Contains(errOut, "--force") {
		t.Errorf("delete of an IN_PROGRESS job: exit %d, stderr:\n%s", code, errOut)
	}
	if out := mustJobsCLI(t, conn, "cancel", "--job", "fw-1", "--thing", "lamp-2"); out != "canceled job fw-1 on lamp-2\n" {
		t.Errorf("cancel --thing printed %q", out)
	}
	if out := mustJobsCLI(t, conn, "cancel", "--job", "fw-1", "--force", "--reason-code", "BAD_BUILD"); !strings.HasPrefix(out, "canceled job fw-1 ") {
		t.Errorf("cancel printed %q", out)
	}
	var j jobJSON
	if err := json.Unmarshal([]byte(mustJobsCLI(t, conn, "describe", "--job", "fw-1", "--json")), &j); err != nil ||
		j.Status != "CANCELED" || !j.ForceCanceled || j.ReasonCode != "BAD_BUILD" || j.Executions["CANCELED"] != 2 || j.CompletedAt == nil {
		t.Errorf("describe --json after cancel: %v, %+v", err, j)
	}
	if out := mustJobsCLI(t, conn, "delete", "--job", "fw-1"); out != "deleted job fw-1\n" {
		t.Errorf("delete printed %q", out)
	}
	code, out, errOut = jobsCLI(t, conn, "describe", "--job", "fw-1")
	if code != 1 || out != "" || !strings.Contains(errOut, "shadowsync jobs: describe job fw-1: ResourceNotFoundException: ") {
		t.Errorf("describe of a deleted job: exit %d, stdout %q, stderr:\n%s", code, out, errOut)
	}
	code, _, errOut = jobsCLI(t, conn, "create", "--job-id", "fw-2", "--thing", "lamp-1", "--document", doc)
	if code != 0 {
		t.Fatalf("create fw-2: exit %d: %s", code, errOut)
	}
	code, _, errOut = jobsCLI(t, conn, "create", "--job-id", "fw-2", "--thing", "lamp-1", "--document", doc)
	if code != 1 || !strings.Contains(errOut, "create job fw-2: ResourceAlreadyExistsException") {
		t.Errorf("create of an existing job: exit %d, stderr:\n%s", code, errOut)
	}
}

// A wrong secret or no server is a failure (exit 1) that says so.
func TestJobsFailures(t *testing.T) {
	_, conn := jobsServe(t)
	bad := append([]string{}, conn...)
	bad[len(bad)-1] = "not-the-secret"
	code, _, errOut := jobsCLI(t, bad, "list")
	if code != 1 || !strings.Contains(errOut, "list jobs: ForbiddenException") {
		t.Errorf("list with a wrong secret: exit %d, stderr:\n%s", code, errOut)
	}
	code, _, errOut = cli(t, "", "jobs", "list", "--endpoint", "https://127.0.0.1:1", "--access-key-id", "A", "--secret-access-key", "S")
	if code != 1 || !strings.Contains(errOut, "list jobs: ") {
		t.Errorf("list with nothing at the endpoint: exit %d, stderr:\n%s", code, errOut)
	}
}

// Bad input is a usage error (exit 2) naming what was wrong, found before connecting.
func TestJobsUsageErrors(t *testing.T) {
	doc := writeFile(t, "doc.json", `{"op":"x"}`)
	notObject := writeFile(t, "list.json", `[1,2]`)
	key := []string{"--access-key-id", "A", "--secret-access-key", "S"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"jobs"}, "jobs needs a subcommand"},
		{[]string{"jobs", "frob"}, `unknown jobs subcommand "frob"`},
		{[]string{"jobs", "create", "--thing", "t", "--document", doc}, "--job-id is required"},
		{[]string{"jobs", "create", "--job-id", "no spaces", "--thing", "t", "--document", doc}, `--job-id: jobId "no spaces"`},
		{[]string{"jobs", "create", "--job-id", "j", "--document", doc}, "--thing is required"},
		{[]string{"jobs", "create", "--job-id", "j", "--thing", "a b", "--document", doc}, `--thing: thing name "a b"`},
		{[]string{"jobs", "create", "--job-id", "j", "--thing", "t"}, "--document is required"},
		{[]string{"jobs", "create", "--job-id", "j", "--thing", "t", "--document", "/no/such/doc.json"}, "--document: open /no/such/doc.json"},
		{[]string{"jobs", "create", "--job-id", "j", "--thing", "t", "--document", notObject}, "job document is not a JSON object"},
		{[]string{"jobs", "create", "--job-id", "j", "--thing", "t", "--document", doc, "--in-progress-timeout", "90s"}, "--in-progress-timeout 1m30s: want whole minutes"},
		{[]string{"jobs", "create", "--job-id", "j", "--thing", "t", "--document", doc, "--in-progress-timeout", "200h"}, "--in-progress-timeout 200h0m0s"},
		{[]string{"jobs", "list", "--thing", "t", "--job", "j"}, "give --thing or --job, not both"},
		{[]string{"jobs", "list", "--status", "QUEUED"}, `--status "QUEUED": a job's status is one of`},
		{[]string{"jobs", "list", "--job", "j", "--status", "COMPLETED"}, `--status "COMPLETED": an execution's status is one of`},
		{[]string{"jobs", "describe"}, "--job is required"},
		{[]string{"jobs", "describe", "--job", "j", "--thing", "a/b"}, "--thing: thing name"},
		{[]string{"jobs", "cancel", "--job", "j", "--thing", "t", "--comment", "why"}, "--reason-code and --comment are for a whole job"},
		{[]string{"jobs", "delete", "--job", "j", "extra"}, `unexpected argument "extra"`},
		{[]string{"jobs", "delete", "--job", "j", "--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"jobs", "list", "--endpoint", "mqtt://127.0.0.1:1883"}, `--endpoint "mqtt://127.0.0.1:1883": want https://HOST[:PORT]`},
		{[]string{"jobs", "list", "--timeout", "0s"}, "--timeout must be positive"},
		{[]string{"jobs", "list", "--ca", "/no/such/ca.pem"}, "--ca: open /no/such/ca.pem"},
	} {
		args := tc.args
		if len(args) > 1 { // the key, so that only what the case is about is wrong
			args = append(append([]string{}, args[:2]...), append(key, args[2:]...)...)
		}
		code, out, errOut := cli(t, "", args...)
		if code != 2 || !strings.Contains(errOut, tc.want) {
			t.Errorf("shadowsync %s: exit %d, stdout %q, stderr:\n%s\nwant exit 2 and %q", strings.Join(tc.args, " "), code, out, errOut, tc.want)
		}
	}
	code, _, errOut := cli(t, "", "jobs", "list", "--access-key-id", "A")
	if code != 2 || !strings.Contains(errOut, "--access-key-id and --secret-access-key go together") {
		t.Errorf("a key ID without a secret: exit %d, stderr:\n%s", code, errOut)
	}
}

// `help jobs` and `jobs SUB -h` print usage headers like the other commands'.
func TestJobsHelp(t *testing.T) {
	out := mustCLI(t, "", "help", "jobs")
	if !strings.HasPrefix(out, "Usage: shadowsync jobs <subcommand> [flags]\n") || !strings.Contains(out, "  create ") || !strings.Contains(out, "  delete ") {
		t.Errorf("help jobs printed:\n%s", out)
	}
	for _, sub := range []string{"create", "list", "describe", "cancel", "delete"} {
		out := mustCLI(t, "", "jobs", sub, "-h")
		if !strings.HasPrefix(out, "Usage: shadowsync jobs "+sub+" [flags]\n\nFlags:\n") || !strings.Contains(out, "-endpoint URL") {
			t.Errorf("jobs %s -h printed:\n%s", sub, out)
		}
	}
	if out := mustCLI(t, "", "help"); !strings.Contains(out, "\n  jobs     ") {
		t.Errorf("help does not list jobs:\n%s", out)
	}
}
