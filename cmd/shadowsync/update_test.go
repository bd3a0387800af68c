package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shadowsync/shadowsync/internal/testserver"
	"github.com/shadowsync/shadowsync/localiot"
	"github.com/shadowsync/shadowsync/shadowstate"
)

func TestUpdateWithSetPaths(t *testing.T) {
	ep := testserver.Start(t, localiot.Options{}).Endpoints().Plain
	out := mustCLI(t, "", "update", "--endpoint", ep, "--thing", "Pump-7", "--desired",
		"--set", "motor.speed=1200", "--set", "motor.mode=eco", "--set", "valves.in.open=true", "--set", "label=\"007\"")
	if out != "updated desired state of shadow \"Pump-7\": version 1\n" {
		t.Errorf("update printed %q", out)
	}
	doc := getDocument(t, "--endpoint", ep, "--thing", "Pump-7")
	if got, want := asJSON(t, doc.State.Desired), `{"label":"007","motor":{"mode":"eco","speed":1200},"valves":{"in":{"open":true}}}`; got != want {
		t.Errorf("desired %s, want %s", got, want)
	}
	// A later --set changes one leaf and null deletes another; the rest stays.
	mustCLI(t, "", "update", "--endpoint", ep, "--thing", "Pump-7", "--desired", "--set", "motor.speed=900", "--set", "label=null")
	doc = getDocument(t, "--endpoint", ep, "--thing", "Pump-7")
	if got, want := asJSON(t, doc.State.Desired), `{"motor":{"mode":"eco","speed":900},"valves":{"in":{"open":true}}}`; got != want || doc.Version != 2 {
		t.Errorf("desired %s at version %d, want %s at version 2", got, doc.Version, want)
	}
}

// The state comes from a JSON argument (between flags too), a file, or stdin, into
// the section asked for, of a classic or a named shadow.
func TestUpdateFromArgumentFileAndStdin(t *testing.T) {
	ep := testserver.Start(t, localiot.Options{}).Endpoints().Plain
	file := filepath.Join(t.TempDir(), "state.json")
	if err := os.WriteFile(file, []byte("{\"temp\": 21.5}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"update", "--endpoint", ep, "--thing", "Room-1", "--shadow", "climate"}
	mustCLI(t, "", append(base, "--reported", `{"door":"closed"}`, "--json")...)
	mustCLI(t, "", append(base, "--reported", "--file", file)...)
	out := mustCLI(t, `{"light": {"on": false}}`, append(base, "--file", "-", "--reported", "--json")...)
	var acc shadowstate.UpdateAccepted
	if err := json.Unmarshal([]byte(out), &acc); err != nil || acc.Version != 3 {
		t.Errorf("update --json printed %q (%v), want version 3", out, err)
	}
	doc := getDocument(t, "--endpoint", ep, "--thing", "Room-1", "--shadow", "climate")
	if got, want := asJSON(t, doc.State.Reported), `{"door":"closed","light":{"on":false},"temp":21.5}`; got != want || doc.State.Desired != nil {
		t.Errorf("reported %s, desired %v; want reported %s only", got, doc.State.Desired, want)
	}
	if code, _, _ := cli(t, "", "get", "--endpoint", ep, "--thing", "Room-1"); code != 1 {
		t.Error("the classic shadow exists too")
	}
	code, _, errOut := cli(t, "", append(base, "--reported", "--file", filepath.Join(t.TempDir(), "missing.json"))...)
	if code != 1 || !strings.Contains(errOut, "read state") {
		t.Errorf("missing file: exit %d, stderr:\n%s", code, errOut)
	}
}

func TestUpdateWithVersion(t *testing.T) {
	ep := testserver.Start(t, localiot.Options{}).Endpoints().Plain
	args := func(version, value string) []string {
		return []string{"update", "--endpoint", ep, "--thing", "Bot", "--desired", "--set", "v=" + value, "--version", version}
	}
	mustCLI(t, "", args("0", "a")...) // version 0: only if the shadow does not exist yet
	code, out, errOut := cli(t, "", args("0", "b")...)
	if code != 1 || out != "" || !strings.Contains(errOut, `shadowsync update: shadow "Bot": 409 Version conflict`) {
		t.Errorf("stale --version: exit %d, stdout %q, stderr:\n%s", code, out, errOut)
	}
	if out := mustCLI(t, "", args("1", "c")...); !strings.HasSuffix(out, "version 2\n") {
		t.Errorf("update at the current version printed %q", out)
	}
	if doc := getDocument(t, "--endpoint", ep, "--thing", "Bot"); asJSON(t, doc.State.Desired) != `{"v":"c"}` {
		t.Errorf("desired %s: the conflicting update was applied", asJSON(t, doc.State.Desired))
	}
}
