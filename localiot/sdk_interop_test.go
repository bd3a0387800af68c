package localiot

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shadowsync/shadowsync/shadowstate"
)

// jsSDKEnv names a directory holding node_modules/aws-iot-device-sdk (the AWS IoT
// Device SDK for JavaScript, v1 API). .ci/run installs it with npm and sets this.
const jsSDKEnv = "SHADOWSYNC_JS_SDK"

// jsDevice is a device written with AWS's own JavaScript SDK: it registers its thing
// shadow over mutual TLS, reports every delta it receives, and prints what happens.
const jsDevice = `
const awsIot = require('aws-iot-device-sdk');
const [certs, port, thing] = process.argv.slice(2);
const shadow = awsIot.thingShadow({
  host: '127.0.0.1', port: Number(port), clientId: thing,
  caPath: certs + '/ca.pem', certPath: certs + '/' + thing + '.pem', keyPath: certs + '/' + thing + '.key',
});
const say = (kind, v) => console.log(JSON.stringify({kind, v}));
shadow.on('connect', () => shadow.register(thing, {}, () => say('registered', null)));
shadow.on('delta', (name, doc) => {
  say('delta', doc);
  shadow.update(name, {state: {reported: doc.state}});
});
shadow.on('status', (name, stat, token, doc) => {
  say('status', {stat, version: doc.version});
  if (stat === 'accepted' && doc.state && doc.state.reported) shadow.get(name);
  if (stat === 'accepted' && doc.state && doc.state.delta === undefined && doc.state.desired) { say('in-sync', doc); process.exit(0); }
});
shadow.on('error', (e) => { say('error', String(e)); process.exit(2); });
setTimeout(() => { say('timeout', null); process.exit(3); }, 20000);
`

// TestAWSJavaScriptSDKDevice drives localiot with a device built on AWS's JavaScript
// SDK, given only the generated certificate files and 127.0.0.1: it gets its delta,
// reports it, and reads its shadow back in sync — as it would on AWS IoT.
func TestAWSJavaScriptSDKDevice(t *testing.T) {
	dir := os.Getenv(jsSDKEnv)
	node, err := exec.LookPath("node")
	if dir == "" || err != nil {
		msg := "the AWS IoT Device SDK for JavaScript is not installed: run `npm install aws-iot-device-sdk@2` in a directory and set " + jsSDKEnv + " to it (.ci/run does)"
		t.Skip(msg)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "aws-iot-device-sdk")); err != nil {
		t.Fatalf("%s=%s has no node_modules/aws-iot-device-sdk: %v", jsSDKEnv, dir, err)
	}
	certDir := t.TempDir()
	certs, err := EnsureCerts(certDir, "js-thing")
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, Options{Plain: &PlainListener{}, TLS: certs.TLSListener("")})
	port := s.Endpoints().TLS[strings.LastIndex(s.Endpoints().TLS, ":")+1:]
	script := filepath.Join(dir, "shadowsync-device.js")
	if err := os.WriteFile(script, []byte(jsDevice), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, script, certDir, port, "js-thing")
	cmd.Dir = dir
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()

	app := dialProtocolClient(t, s.Endpoints().Plain, "js-thing", nil)
	seen := map[string]int{}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		var line struct {
			Kind string          `json:"kind"`
			V    json.RawMessage `json:"v"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("device printed %q", sc.Text())
		}
		seen[line.Kind]++
		t.Logf("JS device: %s %s", line.Kind, line.V)
		switch line.Kind {
		case "registered":
			app.request(shadowstate.ID{Thing: "js-thing"}, shadowstate.OpUpdate, `{"state":{"desired":{"color":"red","level":3}}}`, 3)
		case "error", "timeout":
			t.Fatalf("JS device: %s %s", line.Kind, line.V)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("JS device exited: %v (saw %v)", err, seen)
	}
	if seen["delta"] == 0 || seen["in-sync"] != 1 {
		t.Fatalf("JS device saw %v", seen)
	}
	sh, err := s.Shadow(shadowstate.ID{Thing: "js-thing"})
	if err != nil || sh.Reported["color"] != "red" || shadowstate.Delta(sh.Desired, sh.Reported) != nil {
		t.Fatalf("shadow after the JS device: reported %v desired %v (%v)", sh.Reported, sh.Desired, err)
	}
}
