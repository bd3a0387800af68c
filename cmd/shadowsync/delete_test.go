package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/shadowsync/shadowsync/internal/testserver"
	"github.com/shadowsync/shadowsync/localiot"
	"github.com/shadowsync/shadowsync/shadowstate"
)

func TestDelete(t *testing.T) {
	ep := testserver.Start(t, localiot.Options{}).Endpoints().Plain
	for i := range 3 {
		mustCLI(t, "", "update", "--endpoint", ep, "--thing", "Old-1", "--reported", "--set", "n="+strings.Repeat("1", i+1))
	}
	if out := mustCLI(t, "", "delete", "--endpoint", ep, "--thing", "Old-1"); out != "deleted shadow \"Old-1\" at version 3\n" {
		t.Errorf("delete printed %q", out)
	}
	code, _, errOut := cli(t, "", "get", "--endpoint", ep, "--thing", "Old-1")
	if code != 1 || !strings.Contains(errOut, `shadow "Old-1" not found (404`) {
		t.Errorf("get after delete: exit %d, stderr:\n%s", code, errOut)
	}
	code, _, errOut = cli(t, "", "delete", "--endpoint", ep, "--thing", "Old-1")
	if code != 1 || !strings.Contains(errOut, `shadowsync delete: shadow "Old-1" not found (404: No shadow exists with name: 'Old-1')`) {
		t.Errorf("second delete: exit %d, stderr:\n%s", code, errOut)
	}

	mustCLI(t, "", "update", "--endpoint", ep, "--thing", "Old-1", "--shadow", "cfg", "--desired", `{"a":1}`)
	out := mustCLI(t, "", "delete", "--endpoint", ep, "--thing", "Old-1", "--shadow", "cfg", "--json")
	var acc shadowstate.DeleteAccepted
	if err := json.Unmarshal([]byte(out), &acc); err != nil || acc.Version != 1 || acc.Timestamp == 0 {
		t.Errorf("delete --json printed %q (%v)", out, err)
	}
}
