package main

import (
	"strings"
	"syscall"
	"testing"

	"github.com/shadowsync/shadowsync/internal/mosquitto"
)

// serve --attach runs the Device Shadow service on mosquitto, which has none: the CLI
// reads and writes shadows through mosquitto, and with --data they survive the
// service's restart.
func TestServeAttachedToMosquitto(t *testing.T) {
	broker := "mqtt://" + mosquitto.Start(t)
	data := t.TempDir()
	svc := start(t, nil, "serve", "--attach", broker, "--data", data)
	if got := svc.banner(t); got["attached"] != broker || got["data"] != data {
		t.Fatalf("banner %v: want attached %s, data %s", got, broker, data)
	}
	mustCLI(t, "", "update", "--endpoint", broker, "--thing", "Lamp-1", "--desired", `{"on":true}`)
	mustCLI(t, "", "update", "--endpoint", broker, "--thing", "Lamp-1", "--reported", `{"on":false}`)
	want := `shadow    "Lamp-1"
version   2
desired   {"on":true}
reported  {"on":false}
delta     {"on":true}
`
	if out := mustCLI(t, "", "get", "--endpoint", broker, "--thing", "Lamp-1"); out != want {
		t.Errorf("get printed:\n%s\nwant:\n%s", out, want)
	}
	if code := svc.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", code, svc.stderr)
	}

	// Without the service nothing answers: the request times out.
	code, _, errOut := cli(t, "", "get", "--endpoint", broker, "--thing", "Lamp-1", "--timeout", "1s")
	if code == 0 || !strings.Contains(errOut, "time") {
		t.Errorf("get with no shadow service: exit %d, stderr:\n%s\nwant a time-out", code, errOut)
	}

	svc = start(t, nil, "serve", "--attach", broker, "--data", data)
	svc.banner(t)
	if out := mustCLI(t, "", "get", "--endpoint", broker, "--thing", "Lamp-1"); out != want {
		t.Errorf("get after the service's restart printed:\n%s\nwant:\n%s", out, want)
	}
	if code := svc.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", code, svc.stderr)
	}
}

// --attach runs no broker of its own, so the flags of localiot's listeners are
// refused with it, and its own flags are refused without it.
func TestServeAttachFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--attach", "mqtt://127.0.0.1:1", "--mqtt", "127.0.0.1:0", "--console", "127.0.0.1:0"},
			2, "not with --attach, which runs only the Device Shadow service on another broker and no broker of its own: --console, --mqtt"},
		{[]string{"--mqtt", "127.0.0.1:0", "--event-mirror", "events"}, 2, "only with --attach: --event-mirror"},
		{[]string{"--attach", "ftp://127.0.0.1:1"}, 2, `broker URL "ftp://127.0.0.1:1": scheme must be mqtt, mqtts, tcp or ssl`},
		{[]string{"--attach", "mqtt://127.0.0.1:1", "--event-mirror", "$aws/x"}, 2, `EventMirror "$aws/x" may not contain '+' or '#', start with '$' or end with '/'`},
		{[]string{"--attach", "mqtts://127.0.0.1:1", "--attach-ca", "/nonexistent/ca.pem"}, 1, "--attach-ca: open /nonexistent/ca.pem"},
	} {
		code, out := runToEnd(t, nil, append([]string{"serve"}, tc.args...)...)
		if code != tc.code || !strings.Contains(out, tc.want) {
			t.Errorf("serve %s: exit %d, output:\n%s\nwant exit %d and %q", strings.Join(tc.args, " "), code, out, tc.code, tc.want)
		}
	}
}

// --attach mqtts:// with --attach-ca, --attach-cert and --attach-key: the service
// connects to a broker that asks for a client certificate (localiot's TLS listener,
// here with the operator certificate).
func TestServeAttachedOverMutualTLS(t *testing.T) {
	dir := t.TempDir()
	broker := start(t, nil, "serve", "--mqtts", "127.0.0.1:0", "--certs", dir)
	eps := broker.banner(t)
	url := eps["mqtts"]
	if !strings.HasPrefix(url, "mqtts://127.0.0.1:") {
		t.Fatalf("banner %v: want an mqtts listener", eps)
	}
	svc := start(t, nil, "serve", "--attach", url,
		"--attach-ca", dir+"/ca.pem", "--attach-cert", dir+"/operator.pem", "--attach-key", dir+"/operator.key")
	if got := svc.banner(t); got["attached"] != url {
		t.Fatalf("banner %v: want attached %s", got, url)
	}
	if code := svc.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("attached service: exit code %d; stderr:\n%s", code, svc.stderr)
	}

	// Without the client certificate the broker refuses the service.
	code, out := runToEnd(t, nil, "serve", "--attach", url, "--attach-ca", dir+"/ca.pem")
	if code != 1 || !strings.Contains(out, "connect to ssl://127.0.0.1:") {
		t.Errorf("attach without a client certificate: exit %d, output:\n%s\nwant exit 1 and the failed connect", code, out)
	}
	if code := broker.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("broker: exit code %d; stderr:\n%s", code, broker.stderr)
	}
	code, out = runToEnd(t, nil, "serve", "--attach", url, "--attach-cert", dir+"/operator.pem")
	if code != 2 || !strings.Contains(out, "--attach-cert and --attach-key go together") {
		t.Errorf("--attach-cert alone: exit %d, output:\n%s", code, out)
	}
}
