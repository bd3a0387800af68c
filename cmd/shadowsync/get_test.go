package main

import (
	"strings"
	"testing"

	"github.com/shadowsync/shadowsync/internal/testserver"
	"github.com/shadowsync/shadowsync/localiot"
)

func TestGetOfAMissingShadow(t *testing.T) {
	ep := testserver.Start(t, localiot.Options{}).Endpoints().Plain
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--thing", "Nobody"}, `shadowsync get: shadow "Nobody" not found (404: No shadow exists with name: 'Nobody')`},
		{[]string{"--thing", "Nobody", "--shadow", "motor"}, `shadowsync get: shadow "motor" of thing "Nobody" not found (404: No shadow exists with name: 'motor')`},
		{[]string{"--thing", "Nobody", "--json"}, `not found (404: `},
	} {
		code, out, errOut := cli(t, "", append([]string{"get", "--endpoint", ep}, tc.args...)...)
		if code != 1 || !strings.Contains(errOut, tc.want) || out != "" {
			t.Errorf("get %s: exit %d, stdout %q, stderr:\n%s\nwant exit 1 and %q", strings.Join(tc.args, " "), code, out, errOut, tc.want)
		}
	}
}

func TestGetPrintsTheDocument(t *testing.T) {
	ep := testserver.Start(t, localiot.Options{}).Endpoints().Plain
	app := appShadow(t, ep, "Lamp-1", "")
	if _, err := app.UpdateDesired(t.Context(), map[string]any{"on": true, "color": "red"}); err != nil {
		t.Fatal(err)
	}
	if _, err := app.UpdateReported(t.Context(), map[string]any{"on": true, "color": "blue"}); err != nil {
		t.Fatal(err)
	}

	out := mustCLI(t, "", "get", "--endpoint", ep, "--thing", "Lamp-1")
	want := `shadow    "Lamp-1"
version   2
desired   {"color":"red","on":true}
reported  {"color":"blue","on":true}
delta     {"color":"red"}
`
	if out != want {
		t.Errorf("get printed:\n%s\nwant:\n%s", out, want)
	}

	doc := getDocument(t, "--endpoint", ep, "--thing", "Lamp-1")
	if doc.Version != 2 || asJSON(t, doc.State.Desired) != `{"color":"red","on":true}` || asJSON(t, doc.State.Delta) != `{"color":"red"}` ||
		doc.Metadata.Desired["color"] == nil || doc.Timestamp == 0 {
		t.Errorf("get --json: %+v", doc)
	}
}
