package localiot

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shadowsync/shadowsync/shadowstate"
)

// jsSDKEnv names a directory holding node_modules/aws-iot-device-sdk (the AWS IoT
// Device SDK for JavaScript, v1 API). .ci/run installs it with npm and sets this.
const jsSDKEnv = "SHADOWSYNC_JS_SDK"

// jsDevice is a device written with AWS's own JavaScript SDK: it registers its thing
// shadow, reports every delta it receives, and prints what happens. Its one argument
// is the JSON of the SDK's connection options plus "thing", and "caFile" for wss.
const jsDevice = `
const fs = require('fs');
const awsIot = require('aws-iot-device-sdk');
const opts = JSON.parse(process.argv[2]);
const thing = opts.thing;
if (opts.caFile) opts.websocketOptions = {ca: fs.readFileSync(opts.caFile)};
const shadow = awsIot.thingShadow(opts);
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

// jsSDK returns node and the directory holding the AWS IoT Device SDK for JavaScript,
// skipping the test, with how to install it, when there is none.
func jsSDK(t *testing.T) (node, dir string) {
	t.Helper()
	dir = os.Getenv(jsSDKEnv)
	node, err := exec.LookPath("node")
	if dir == "" || err != nil {
		msg := "the AWS IoT Device SDK for JavaScript is not installed: run `npm install aws-iot-device-sdk@2` in a directory and set " + jsSDKEnv + " to it (.ci/run does)"
		t.Skip(msg)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "aws-iot-device-sdk")); err != nil {
		t.Fatalf("%s=%s has no node_modules/aws-iot-device-sdk: %v", jsSDKEnv, dir, err)
	}
	return node, dir
}

// TestAWSJavaScriptSDKDevice drives localiot with a device built on AWS's JavaScript
// SDK over mutual TLS, given only the generated certificate files and 127.0.0.1: it
// gets its delta, reports it, and reads its shadow back in sync — as it would on AWS
// IoT.
func TestAWSJavaScriptSDKDevice(t *testing.T) {
	node, dir := jsSDK(t)
	certDir := t.TempDir()
	certs, err := EnsureCerts(certDir, "js-thing")
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, Options{Plain: &PlainListener{}, TLS: certs.TLSListener("")})
	port, _ := strconv.Atoi(s.Endpoints().TLS[strings.LastIndex(s.Endpoints().TLS, ":")+1:])
	runJSDevice(t, s, node, dir, map[string]any{
		"host": "127.0.0.1", "port": port, "clientId": "js-thing", "thing": "js-thing",
		"caPath": filepath.Join(certDir, "ca.pem"), "certPath": filepath.Join(certDir, "js-thing.pem"), "keyPath": filepath.Join(certDir, "js-thing.key"),
	})
}

// TestAWSJavaScriptSDKDeviceWebSocket is TestAWSJavaScriptSDKDevice with the SDK's
// thingShadow over wss, signing its URL with an access key (and session token) that
// acts as the thing: the SDK's own SigV4 signer, handshake and framing.
func TestAWSJavaScriptSDKDeviceWebSocket(t *testing.T) {
	node, dir := jsSDK(t)
	certDir := t.TempDir()
	certs, err := EnsureCerts(certDir)
	if err != nil {
		t.Fatal(err)
	}
	cred := Credential{AccessKeyID: "AKIDJSDEVICE", SecretAccessKey: "js/secret+key", SessionToken: "js-token/with+special=chars", Thing: "js-ws-thing"}
	s := startServer(t, Options{Plain: &PlainListener{}, WebSocket: &WebSocketListener{Certificate: &certs.Server, Credentials: []Credential{cred}, Region: "us-east-1"}})
	ep := strings.TrimSuffix(s.Endpoints().WebSocket, websocketPath)
	port, _ := strconv.Atoi(ep[strings.LastIndex(ep, ":")+1:])
	runJSDevice(t, s, node, dir, map[string]any{
		"host": "127.0.0.1", "port": port, "clientId": cred.Thing, "thing": cred.Thing,
		"protocol": "wss", "region": "us-east-1", "caFile": filepath.Join(certDir, "ca.pem"),
		"accessKeyId": cred.AccessKeyID, "secretKey": cred.SecretAccessKey, "sessionToken": cred.SessionToken,
	})
}

// runJSDevice runs jsDevice with opts against s, has an app on s's plain listener
// desire a state once the device has registered, and fails the test unless the device
// reports it and reads its shadow back in sync.
func runJSDevice(t *testing.T, s *Server, node, dir string, opts map[string]any) {
	t.Helper()
	thing := opts["thing"].(string)
	script := filepath.Join(dir, "shadowsync-device.js")
	if err := os.WriteFile(script, []byte(jsDevice), 0o644); err != nil {
		t.Fatal(err)
	}
	arg, err := json.Marshal(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, script, string(arg))
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

	app := dialProtocolClient(t, s.Endpoints().Plain, thing, nil)
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
			app.request(shadowstate.ID{Thing: thing}, shadowstate.OpUpdate, `{"state":{"desired":{"color":"red","level":3}}}`, 3)
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
	sh, err := s.Shadow(shadowstate.ID{Thing: thing})
	if err != nil || sh.Reported["color"] != "red" || shadowstate.Delta(sh.Desired, sh.Reported) != nil {
		t.Fatalf("shadow after the JS device: reported %v desired %v (%v)", sh.Reported, sh.Desired, err)
	}
}
