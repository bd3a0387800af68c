package main

import (
	"encoding/json"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shadowsync/shadowsync/internal/testserver"
	"github.com/shadowsync/shadowsync/localiot"
)

// nextLine returns the process's next line of stdout, failing after 10 s.
func (p *proc) nextLine(t *testing.T) string {
	t.Helper()
	select {
	case l, ok := <-p.lines:
		if !ok {
			t.Fatalf("exited early; stderr:\n%s", p.stderr)
		}
		return l
	case <-time.After(10 * time.Second):
		t.Fatalf("no output in 10s; stderr:\n%s", p.stderr)
	}
	return ""
}

func TestWatchStreamsUntilInterrupted(t *testing.T) {
	ep := testserver.Start(t, localiot.Options{}).Endpoints().Plain
	p := start(t, nil, "watch", "--endpoint", ep, "--thing", "Heater-1")
	if l := p.nextLine(t); l != `watching shadow "Heater-1" on `+ep+" (Ctrl-C to stop)" {
		t.Fatalf("first line %q", l)
	}

	// Another client — an app — changes the desired state.
	app := appShadow(t, ep, "Heater-1", "")
	if _, err := app.UpdateDesired(t.Context(), map[string]any{"target": 21}); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for len(got) < 2 {
		l := p.nextLine(t)
		f := strings.Fields(l)
		if len(f) < 2 {
			t.Fatalf("line %q", l)
		}
		got[f[1]] = l
	}
	if !strings.HasSuffix(got["delta"], ` delta     version 1  {"target":21}`) {
		t.Errorf("delta line %q", got["delta"])
	}
	if !strings.HasSuffix(got["document"], ` document  version 1  desired {"target":21}  reported {}`) {
		t.Errorf("document line %q", got["document"])
	}
	// Deleting the shadow publishes no documents message; watch says so all the same.
	if _, err := app.Delete(t.Context()); err != nil {
		t.Fatal(err)
	}
	if l := p.nextLine(t); !strings.HasSuffix(l, " deleted   version 1") {
		t.Errorf("delete line %q", l)
	}
	if code := p.stop(t, syscall.SIGINT); code != 0 {
		t.Errorf("exit %d after SIGINT; stderr:\n%s", code, p.stderr)
	}
}

func TestWatchJSON(t *testing.T) {
	ep := testserver.Start(t, localiot.Options{}).Endpoints().Plain
	p := start(t, nil, "watch", "--endpoint", ep, "--thing", "Heater-2", "--shadow", "schedule", "--json")
	decode := func() map[string]any {
		l := p.nextLine(t)
		var e map[string]any
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("line %q is not JSON: %v", l, err)
		}
		if e["thing"] != "Heater-2" || e["shadow"] != "schedule" {
			t.Errorf("event %s names the wrong shadow", l)
		}
		return e
	}
	if e := decode(); e["event"] != "watching" {
		t.Fatalf("first event %v", e)
	}

	// A device reports first (no delta: nothing desired), then an app desires.
	dev := appShadow(t, ep, "Heater-2", "schedule")
	if _, err := dev.UpdateReported(t.Context(), map[string]any{"mode": "night"}); err != nil {
		t.Fatal(err)
	}
	if e := decode(); e["event"] != "documents" || e["version"] != 1.0 || e["previous"] != nil {
		t.Errorf("first update's documents event %v", e)
	}
	if _, err := dev.UpdateDesired(t.Context(), map[string]any{"mode": "day"}); err != nil {
		t.Fatal(err)
	}
	byEvent := map[string]map[string]any{}
	for range 2 {
		e := decode()
		byEvent[e["event"].(string)] = e
	}
	delta, docs := byEvent["delta"], byEvent["documents"]
	if delta == nil || delta["version"] != 2.0 || asJSON(t, delta["state"]) != `{"mode":"day"}` {
		t.Errorf("delta event %v", delta)
	}
	if docs == nil || asJSON(t, docs["previous"].(map[string]any)["state"]) != `{"reported":{"mode":"night"}}` ||
		asJSON(t, docs["current"].(map[string]any)["state"]) != `{"desired":{"mode":"day"},"reported":{"mode":"night"}}` {
		t.Errorf("documents event %v", docs)
	}
	if _, err := dev.Delete(t.Context()); err != nil {
		t.Fatal(err)
	}
	if e := decode(); e["event"] != "deleted" || e["version"] != 2.0 {
		t.Errorf("delete event %v", e)
	}
	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("exit %d after SIGTERM; stderr:\n%s", code, p.stderr)
	}
}
