package main

import (
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// --console serves the web console beside the MQTT listeners and prints its URL.
func TestServeConsole(t *testing.T) {
	p := start(t, nil, "serve", "--mqtt", "127.0.0.1:0", "--console", "127.0.0.1:0")
	eps := p.banner(t)
	if !strings.HasPrefix(eps["console"], "http://127.0.0.1:") {
		t.Fatalf("banner %v: want console on loopback", eps)
	}
	hc := &http.Client{Timeout: 10 * time.Second}
	resp, err := hc.Get(eps["console"] + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), "localiot console") {
		t.Errorf("GET /: %d\n%s", resp.StatusCode, page)
	}
	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", code, p.stderr)
	}
}

// The console has no authentication: --console refuses an address that is not
// loopback unless --console-insecure-any-address is given.
func TestServeConsoleLoopbackOnly(t *testing.T) {
	code, out := runToEnd(t, nil, "serve", "--mqtt", "127.0.0.1:0", "--console", "0.0.0.0:0")
	if code != 2 || !strings.Contains(out, "--console 0.0.0.0:0 is not a loopback address") {
		t.Errorf("exit %d, output:\n%s", code, out)
	}
	code, out = runToEnd(t, nil, "serve", "--mqtt", "127.0.0.1:0", "--console-insecure-any-address")
	if code != 2 || !strings.Contains(out, "--console-insecure-any-address needs --console") {
		t.Errorf("exit %d, output:\n%s", code, out)
	}
}
