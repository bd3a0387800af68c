package shadowclient

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/shadowsync/shadowsync/shadowstate"
	"github.com/shadowsync/shadowsync/transport"
)

// TestEncodeUpdateMatchesMarshal: encodeUpdate writes what json.Marshal writes for
// every shape of update request, those it writes by hand and those it hands back to
// json.Marshal (sections it would compact or escape, tokens it would escape).
func TestEncodeUpdateMatchesMarshal(t *testing.T) {
	v := int64(42)
	neg := int64(-1)
	sections := []string{
		``, `null`, `{}`, `{"on":true}`, `{"a":{"b":[1,2.5,"x",null]}}`,
		`{"s":"with space"}`, "{\"a\":\n1}", `{"html":"<b>&</b>"}`, "{\"ls\":\"\u2028\"}",
		`{"é":"ü"}`, `{"q":"\"\\"}`,
	}
	tokens := []string{"", "3f2a9c0e4b5d6a7f", "a b", `q"uote`, "ünï"}
	versions := []*int64{nil, &v, &neg}
	n := 0
	for _, d := range sections {
		for _, r := range sections {
			for _, tok := range tokens {
				for _, ver := range versions {
					req := shadowstate.UpdateRequest{
						State:       &shadowstate.StateUpdate{Desired: json.RawMessage(d), Reported: json.RawMessage(r)},
						ClientToken: tok, Version: ver,
					}
					want, werr := json.Marshal(req)
					got, gerr := encodeUpdate(req)
					if (werr == nil) != (gerr == nil) || !bytes.Equal(got, want) {
						t.Fatalf("desired %q reported %q token %q: got %s (%v), json.Marshal %s (%v)", d, r, tok, got, gerr, want, werr)
					}
					n++
				}
			}
		}
	}
	// Invalid JSON in a section fails as json.Marshal fails.
	for _, bad := range []string{`{`, `{"a":}`, `nul`} {
		req := shadowstate.UpdateRequest{State: &shadowstate.StateUpdate{Reported: json.RawMessage(bad)}, ClientToken: "t"}
		if _, err := encodeUpdate(req); err == nil {
			t.Errorf("section %q: encoded, want json.Marshal's error", bad)
		}
	}
	if req := (shadowstate.UpdateRequest{}); true {
		want, _ := json.Marshal(req)
		if got, err := encodeUpdate(req); err != nil || !bytes.Equal(got, want) {
			t.Errorf("no state: got %s (%v), want %s", got, err, want)
		}
	}
	t.Logf("%d requests compared", n)
}

// TestEncodeUpdateWritesPlainRequestsByHand: the request the reconciler sends for
// each report (a compact reported section, a token, a version) is written without
// json.Marshal: one allocation, the result.
func TestEncodeUpdateWritesPlainRequestsByHand(t *testing.T) {
	v := int64(7)
	req := shadowstate.UpdateRequest{
		State:       &shadowstate.StateUpdate{Reported: json.RawMessage(`{"seq":3,"mode":"eco"}`)},
		ClientToken: "3f2a9c0e4b5d6a7f", Version: &v,
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = encodeUpdate(req) }); n != 1 {
		t.Errorf("%v allocations per request, want 1", n)
	}
}

// TestWildcardsReady: once the client uses the wildcard filters, a request whose
// reply filters are subscribed needs no bookkeeping; one whose filter is not yet
// subscribed, or on a client still on named filters, takes the full path (and waits
// for the SUBACK there).
func TestWildcardsReady(t *testing.T) {
	id := shadowstate.ID{Thing: "lamp-1"}
	named := shadowstate.ID{Thing: "lamp-1", Name: "cfg"}
	kinds := []shadowstate.Kind{shadowstate.Rejected}
	tab := &filterTable{entries: map[string]*entry{}}
	if tab.wildcardsReady(id, shadowstate.OpUpdate, kinds) {
		t.Fatal("ready before the client moved to wildcards")
	}
	tab.wildcard = true
	if tab.wildcardsReady(id, shadowstate.OpUpdate, kinds) {
		t.Fatal("ready with no wildcard filter at all")
	}
	rejected := "$aws/things/+/shadow/+/rejected"
	tab.entries[rejected] = &entry{filter: rejected} // SUBSCRIBE under way
	if tab.wildcardsReady(id, shadowstate.OpUpdate, kinds) {
		t.Fatal("ready before the wildcard filter's SUBACK")
	}
	tab.entries[rejected].sub = &transport.Subscription{}
	if !tab.wildcardsReady(id, shadowstate.OpUpdate, kinds) {
		t.Error("not ready with the classic shadows' rejections subscribed")
	}
	if tab.wildcardsReady(named, shadowstate.OpUpdate, kinds) {
		t.Error("a named shadow's request ready on the classic shadows' filter")
	}
	both := []shadowstate.Kind{shadowstate.Accepted, shadowstate.Rejected}
	if tab.wildcardsReady(id, shadowstate.OpGet, both) {
		t.Error("a get ready without its accepted filter")
	}
	accepted := "$aws/things/+/shadow/get/accepted"
	tab.entries[accepted] = &entry{filter: accepted, sub: &transport.Subscription{}}
	if !tab.wildcardsReady(id, shadowstate.OpGet, both) {
		t.Error("a get not ready with both its filters subscribed")
	}
	tab.closed = true
	if tab.wildcardsReady(id, shadowstate.OpGet, both) {
		t.Error("ready on a closed client")
	}
}
