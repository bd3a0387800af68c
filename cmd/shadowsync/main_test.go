package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	mqttc "github.com/eclipse/paho.mqtt.golang"
	"github.com/shadowsync/shadowsync/discovery"
	"github.com/shadowsync/shadowsync/localiot"
)

// binary is the shadowsync command built once for the tests that drive it as a user
// would.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "shadowsync-cli-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "shadowsync")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		panic("build shadowsync: " + err.Error() + "\n" + string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running shadowsync process.
type proc struct {
	cmd    *exec.Cmd
	lines  chan string
	stderr *strings.Builder
}

func start(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, lines: make(chan string, 64), stderr: &strings.Builder{}}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return p
}

// banner reads the lines serve prints at start, up to its "data" line, by kind.
func (p *proc) banner(t *testing.T) map[string]string {
	t.Helper()
	got := map[string]string{}
	timeout := time.After(20 * time.Second)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				t.Fatalf("serve exited before it was ready; stderr:\n%s", p.stderr)
			}
			kind, rest, _ := strings.Cut(l, " ")
			got[kind] = strings.Fields(rest)[0]
			if kind == "data" {
				return got
			}
		case <-timeout:
			t.Fatalf("serve printed %v and nothing more in 20s; stderr:\n%s", got, p.stderr)
		}
	}
}

// stop sends sig and waits for the process to exit, returning its exit code.
func (p *proc) stop(t *testing.T, sig os.Signal) int {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("no exit within 10s of %v", sig)
	}
	return p.cmd.ProcessState.ExitCode()
}

// runToEnd runs shadowsync to completion and returns its exit code and output.
func runToEnd(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	out, _ := cmd.CombinedOutput()
	return cmd.ProcessState.ExitCode(), string(out)
}

func mqttClient(t *testing.T, broker, id string, cfg *tls.Config) mqttc.Client {
	t.Helper()
	o := mqttc.NewClientOptions().AddBroker(broker).SetClientID(id).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second)
	if cfg != nil {
		o.SetTLSConfig(cfg)
	}
	c := mqttc.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", broker, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c
}

// roundTrip publishes payload on a shadow request topic and returns the first reply
// on reply.
func roundTrip(t *testing.T, c mqttc.Client, reply, topic, payload string) string {
	t.Helper()
	got := make(chan string, 1)
	if tok := c.Subscribe(reply, 1, func(_ mqttc.Client, m mqttc.Message) {
		select {
		case got <- string(m.Payload()):
		default:
		}
	}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", reply, tok.Error())
	}
	if tok := c.Publish(topic, 1, false, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
	select {
	case m := <-got:
		c.Unsubscribe(reply).WaitTimeout(5 * time.Second)
		return m
	case <-time.After(10 * time.Second):
		t.Fatalf("no reply on %s", reply)
	}
	return ""
}

func TestServeWithCertificatesAndData(t *testing.T) {
	certs, data := t.TempDir(), t.TempDir()
	args := []string{"serve", "--mqtt", "127.0.0.1:0", "--mqtts", "127.0.0.1:0", "--certs", certs, "--thing", "Dev-1", "--data", data}
	p := start(t, nil, args...)
	eps := p.banner(t)
	if eps["certs"] != certs || eps["data"] != data || !strings.HasPrefix(eps["mqtts"], "mqtts://127.0.0.1:") || !strings.HasPrefix(eps["mqtt"], "mqtt://127.0.0.1:") {
		t.Fatalf("banner %v", eps)
	}
	for _, f := range []string{"ca.pem", "server.pem", "server.key", "operator.pem", "operator.key", "Dev-1.pem", "Dev-1.key"} {
		if _, err := os.Stat(filepath.Join(certs, f)); err != nil {
			t.Errorf("certificate file: %v", err)
		}
	}

	// A device configured the way an AWS IoT SDK is — CA file, certificate file, key
	// file, endpoint — updates its shadow over TLS.
	pair, err := tls.LoadX509KeyPair(filepath.Join(certs, "Dev-1.pem"), filepath.Join(certs, "Dev-1.key"))
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(filepath.Join(certs, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	dev := mqttClient(t, eps["mqtts"], "Dev-1", &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{pair}, ServerName: "localhost"})
	reply := roundTrip(t, dev, "$aws/things/Dev-1/shadow/update/accepted", "$aws/things/Dev-1/shadow/update", `{"state":{"reported":{"fw":"1.0"}}}`)
	if !strings.Contains(reply, `"version":1`) {
		t.Fatalf("update accepted: %s", reply)
	}
	if code := p.stop(t, syscall.SIGINT); code != 0 {
		t.Fatalf("exit code %d after SIGINT; stderr:\n%s", code, p.stderr)
	}

	// Restarted on the same directories: same certificates, same shadows.
	before, _ := os.ReadFile(filepath.Join(certs, "Dev-1.pem"))
	p = start(t, nil, args...)
	eps = p.banner(t)
	after, _ := os.ReadFile(filepath.Join(certs, "Dev-1.pem"))
	if string(before) != string(after) {
		t.Error("restart regenerated the thing's certificate")
	}
	op := mqttClient(t, eps["mqtt"], "app", nil)
	reply = roundTrip(t, op, "$aws/things/Dev-1/shadow/get/accepted", "$aws/things/Dev-1/shadow/get", ``)
	if !strings.Contains(reply, `"version":1`) || !strings.Contains(reply, `"fw":"1.0"`) {
		t.Fatalf("shadow after restart: %s", reply)
	}
	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit code %d after SIGTERM; stderr:\n%s", code, p.stderr)
	}
}

// --ws serves what AWS IoT serves on port 443: WebSocket, and MQTT with a client
// certificate to clients offering ALPN x-amzn-mqtt-ca, on the one port.
func TestServeWebSocketBanner(t *testing.T) {
	dir := t.TempDir()
	p := start(t, []string{"AWS_ACCESS_KEY_ID=AKIDLOCAL", "AWS_SECRET_ACCESS_KEY=local-secret"},
		"serve", "--ws", "127.0.0.1:0", "--certs", dir)
	eps := p.banner(t)
	if !strings.HasPrefix(eps["ws"], "wss://127.0.0.1:") || !strings.HasSuffix(eps["ws"], "/mqtt") {
		t.Fatalf("banner %v", eps)
	}
	if eps["alpn"] != "mqtts://"+strings.TrimSuffix(strings.TrimPrefix(eps["ws"], "wss://"), "/mqtt") {
		t.Fatalf("banner %v: want alpn on the ws port", eps)
	}
	if _, ok := eps["mqtt"]; ok {
		t.Errorf("--ws alone also served plain MQTT: %v", eps)
	}
	set, err := localiot.EnsureCerts(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := set.ClientTLS(localiot.OperatorCertName)
	if err != nil {
		t.Fatal(err)
	}
	cfg.NextProtos = []string{"x-amzn-mqtt-ca"}
	c := mqttClient(t, eps["alpn"], "alpn-operator", cfg)
	reply := roundTrip(t, c, "$aws/things/Dev-9/shadow/get/rejected", "$aws/things/Dev-9/shadow/get", ``)
	if !strings.Contains(reply, `"code":404`) {
		t.Errorf("get of a missing shadow over ALPN MQTT: %s", reply)
	}
	p.stop(t, syscall.SIGINT)
}

// --server-name issues the server certificate for the names given, and only those.
func TestServeServerName(t *testing.T) {
	const name = "abcdefghijklmn-ats.iot.us-east-1.amazonaws.com"
	dir := t.TempDir()
	p := start(t, nil, "serve", "--mqtts", "127.0.0.1:0", "--certs", dir, "--server-name", name)
	eps := p.banner(t)
	set, err := localiot.EnsureCertsWith(dir, localiot.CertOptions{ServerNames: []string{name}})
	if err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimPrefix(eps["mqtts"], "mqtts://")
	for serverName, wantOK := range map[string]bool{name: true, "127.0.0.1": false} {
		cfg, err := set.ClientTLS(localiot.OperatorCertName)
		if err != nil {
			t.Fatal(err)
		}
		cfg.ServerName = serverName
		d := tls.Dialer{Config: cfg}
		d.NetDialer = &net.Dialer{Timeout: 10 * time.Second}
		conn, err := d.Dial("tcp", addr)
		if err == nil {
			conn.Close()
		}
		if (err == nil) != wantOK {
			t.Errorf("TLS to %s as %s: %v, want success %v", addr, serverName, err, wantOK)
		}
	}
	p.stop(t, syscall.SIGINT)
}

// --discovery serves Greengrass discovery pointing at the --mqtts listener.
func TestServeDiscovery(t *testing.T) {
	dir := t.TempDir()
	p := start(t, nil, "serve", "--mqtts", "127.0.0.1:0", "--discovery", "127.0.0.1:0", "--certs", dir, "--thing", "Dev-1")
	eps := p.banner(t)
	host, _, ok := strings.Cut(strings.TrimPrefix(eps["discovery"], "https://"), "/")
	if !ok {
		t.Fatalf("discovery line %q", eps["discovery"])
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	info, err := discovery.Discover(ctx, discovery.Config{
		Endpoint: host, ThingName: "Dev-1", CAFile: filepath.Join(dir, "ca.pem"),
		CertFile: filepath.Join(dir, "Dev-1.pem"), KeyFile: filepath.Join(dir, "Dev-1.key"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if cs := info.Candidates(); len(cs) != 1 || cs[0].Endpoint() != eps["mqtts"] {
		t.Errorf("candidates %+v, want %s", cs, eps["mqtts"])
	}
	p.stop(t, syscall.SIGINT)
}

func TestUsageErrors(t *testing.T) {
	noCreds := []string{"AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY="}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"serve", "--log-level", "loud"}, 2, `--log-level "loud"`},
		{[]string{"serve", "--ws", "127.0.0.1:0"}, 2, "--ws needs --access-key-id"},
		{[]string{"serve", "--mqtt", "127.0.0.1:0", "--thing", "x"}, 2, "--thing, --server-name and --certs need"},
		{[]string{"serve", "--mqtt", "127.0.0.1:0", "--server-name", "x.example"}, 2, "--thing, --server-name and --certs need"},
		{[]string{"serve", "--mqtts", "127.0.0.1:0", "--certs", t.TempDir(), "--server-name", "bad name"}, 1, `server name "bad name"`},
		{[]string{"serve", "--mqtt", "127.0.0.1:0", "--operator-cert", "x.pem"}, 2, "--operator-cert needs --mqtts or --ws"},
		{[]string{"serve", "--mqtts", "127.0.0.1:0", "--certs", t.TempDir(), "--thing", "bad name"}, 1, `thing name "bad name"`},
		{[]string{"serve", "--ws", "127.0.0.1:0", "--discovery", "127.0.0.1:0"}, 2, "--discovery needs --mqtts"},
		{[]string{"serve", "--bogus"}, 2, "flag provided but not defined: -bogus"},
		{[]string{"serve", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"serve", "--mqtt", "127.0.0.1:99999"}, 1, "plain listener"},
		{[]string{"serve", "--mqtt-insecure-any-address"}, 2, "--mqtt-insecure-any-address needs --mqtt"},
		{[]string{"help"}, 0, "serve"},
		{[]string{"help", "serve"}, 0, "-data DIR"},
	} {
		code, out := runToEnd(t, noCreds, tc.args...)
		if code != tc.code || !strings.Contains(out, tc.want) {
			t.Errorf("shadowsync %s: exit %d, output:\n%s\nwant exit %d and %q", strings.Join(tc.args, " "), code, out, tc.code, tc.want)
		}
	}
}

// Plain MQTT gives operator rights with no authentication, so serve binds it on a
// loopback address only, unless told otherwise, and then warns.
func TestServePlainListenerOffLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0"} {
		p := start(t, nil, "serve", "--mqtt", addr)
		done := make(chan error, 1)
		go func() { done <- p.cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatalf("serve --mqtt %s still running after 20s, want a usage error", addr)
		}
		if code := p.cmd.ProcessState.ExitCode(); code != 2 || !strings.Contains(p.stderr.String(), addr) || !strings.Contains(p.stderr.String(), "--mqtt-insecure-any-address") {
			t.Errorf("serve --mqtt %s: exit %d, stderr:\n%s\nwant exit 2 naming the address and --mqtt-insecure-any-address", addr, code, p.stderr)
		}
	}

	p := start(t, nil, "serve", "--mqtt", "0.0.0.0:0", "--mqtt-insecure-any-address")
	eps := p.banner(t)
	_, port, err := net.SplitHostPort(strings.TrimPrefix(eps["mqtt"], "mqtt://"))
	if err != nil {
		t.Fatalf("banner %v: %v", eps, err)
	}
	c := mqttClient(t, "tcp://127.0.0.1:"+port, "app", nil)
	c.Disconnect(0)
	if code := p.stop(t, syscall.SIGINT); code != 0 {
		t.Errorf("exit %d", code)
	}
	if !strings.Contains(p.stderr.String(), "WARNING: --mqtt 0.0.0.0:0 is not a loopback address") || !strings.Contains(p.stderr.String(), "level=WARN") {
		t.Errorf("no warning on stderr:\n%s", p.stderr)
	}
}

func TestServeOperatorCertificate(t *testing.T) {
	dir := t.TempDir()
	set, err := localiot.EnsureCerts(dir, "Admin-1", "Dev-2")
	if err != nil {
		t.Fatal(err)
	}
	p := start(t, nil, "serve", "--mqtts", "127.0.0.1:0", "--certs", dir, "--thing", "Admin-1", "--thing", "Dev-2",
		"--operator-cert", filepath.Join(dir, "Admin-1.pem"))
	eps := p.banner(t)
	for name, wantOperator := range map[string]bool{"Admin-1": true, "Dev-2": false} {
		cfg, err := set.ClientTLS(name)
		if err != nil {
			t.Fatal(err)
		}
		c := mqttClient(t, eps["mqtts"], name, cfg)
		tok := c.Subscribe("$aws/things/Someone-Else/shadow/update/delta", 1, nil)
		if !tok.WaitTimeout(10 * time.Second) {
			t.Fatal("no SUBACK")
		}
		granted := tok.(*mqttc.SubscribeToken).Result()["$aws/things/Someone-Else/shadow/update/delta"] == 1
		if granted != wantOperator {
			t.Errorf("%s may read another thing's shadow: %v, want %v", name, granted, wantOperator)
		}
	}
	p.stop(t, syscall.SIGINT)
}

// A TLS client without a certificate is refused, logged and counted: the counter is
// served at --metrics.
func TestServeMetricsCountRefusals(t *testing.T) {
	dir := t.TempDir()
	set, err := localiot.EnsureCerts(dir)
	if err != nil {
		t.Fatal(err)
	}
	p := start(t, nil, "serve", "--mqtts", "127.0.0.1:0", "--certs", dir, "--metrics", "127.0.0.1:0")
	eps := p.banner(t)
	if !strings.HasPrefix(eps["metrics"], "http://127.0.0.1:") {
		t.Fatalf("banner %v has no metrics URL", eps)
	}
	conn, err := tls.Dial("tcp", strings.TrimPrefix(eps["mqtts"], "mqtts://"), &tls.Config{RootCAs: set.Pool, ServerName: "127.0.0.1"})
	if err == nil {
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := conn.Read(make([]byte, 1)); err == nil {
			t.Fatal("TLS without a client certificate was accepted")
		}
		conn.Close()
	}
	const want = `shadowsync_localiot_connections_refused_total{listener="tls",reason="client_certificate"} 1`
	// The refusal is counted as the handshake fails, which the client may see first:
	// scrape every 20 ms (the polling interval of a wait bounded at 10 s) until it is.
	var body string
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(body, want); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("metrics never showed %s:\n%s", want, body)
		}
		resp, err := http.Get(eps["metrics"])
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
	}
	p.stop(t, syscall.SIGINT)
	if log := p.stderr.String(); !strings.Contains(log, "connection refused") || !strings.Contains(log, "reason=client_certificate") {
		t.Errorf("refusal not logged:\n%s", log)
	}
}

// Every command's help starts with the same usage header, on the built binary.
func TestHelpHeaders(t *testing.T) {
	for _, c := range commands() {
		code, out := runToEnd(t, nil, "help", c.name)
		first, _, _ := strings.Cut(out, "\n")
		if code != 0 || !strings.HasPrefix(first, "Usage: shadowsync "+c.name+" ") {
			t.Errorf("help %s: exit %d, first line %q, want \"Usage: shadowsync %s ...\"", c.name, code, first, c.name)
		}
	}
}
