package shadowstate

import (
	"strings"
	"testing"
)

// parseTopicBySplit is ParseTopic as it was written with strings.Split: the
// reference the allocation-free one must match.
func parseTopicBySplit(topic string) (id ID, op Op, kind Kind, ok bool) {
	rest, found := strings.CutPrefix(topic, "$aws/things/")
	if !found {
		return ID{}, "", "", false
	}
	parts := strings.Split(rest, "/")
	if len(parts) < 3 || parts[1] != "shadow" {
		return ID{}, "", "", false
	}
	id.Thing = parts[0]
	parts = parts[2:]
	if parts[0] == "name" {
		if len(parts) < 3 || parts[1] == "" {
			return ID{}, "", "", false
		}
		id.Name = parts[1]
		parts = parts[2:]
	}
	if len(parts) > 2 || id.Validate() != nil {
		return ID{}, "", "", false
	}
	op = Op(parts[0])
	if len(parts) == 2 {
		kind = Kind(parts[1])
	}
	switch {
	case kind == Request || kind == Accepted || kind == Rejected:
		ok = op == OpGet || op == OpUpdate || op == OpDelete
	case kind == DeltaKind || kind == Documents:
		ok = op == OpUpdate
	}
	if !ok {
		return ID{}, "", "", false
	}
	return id, op, kind, true
}

// TestParseTopicMatchesSplit compares ParseTopic with the Split-based reference on
// shadow topics and near misses: every combination of the likely levels up to four
// deep after $aws/things/<thing>/shadow, and others.
func TestParseTopicMatchesSplit(t *testing.T) {
	levels := []string{"", "T-1", "shadow", "name", "cfg", "update", "get", "delete", "accepted", "rejected", "delta", "documents", "x y", "+", "$package"}
	n := 0
	check := func(topic string) {
		id, op, kind, ok := ParseTopic(topic)
		wid, wop, wkind, wok := parseTopicBySplit(topic)
		if id != wid || op != wop || kind != wkind || ok != wok {
			t.Fatalf("ParseTopic(%q) = %v %q %q %v, want %v %q %q %v", topic, id, op, kind, ok, wid, wop, wkind, wok)
		}
		n++
	}
	var walk func(prefix string, depth int)
	walk = func(prefix string, depth int) {
		check(prefix)
		check("$aws/things/" + prefix)
		if depth == 0 {
			return
		}
		for _, l := range levels {
			walk(prefix+"/"+l, depth-1)
		}
	}
	for _, l := range levels {
		walk(l, 2)
	}
	walk("T-1/shadow", 4) // every shadow topic, and deeper ones
	// Shadow topics are built from the likeliest levels, deeper than any valid one.
	for _, thing := range []string{"T-1", "", "bad name"} {
		for _, tail := range []string{"", "/shadow", "/shadow/update", "/shadow/update/delta", "/shadow/name", "/shadow/name/cfg", "/shadow/name/cfg/get", "/shadow/name/cfg/get/accepted", "/shadow/name/cfg/get/accepted/x", "/shadow/name//get", "/shadow/get/accepted/x/y/z"} {
			check("$aws/things/" + thing + tail)
		}
	}
	if allocs := testing.AllocsPerRun(100, func() { ParseTopic("$aws/things/T-1/shadow/name/cfg/update/documents") }); allocs != 0 {
		t.Errorf("ParseTopic allocates %v times per topic, want 0", allocs)
	}
	t.Logf("%d topics compared", n)
}
