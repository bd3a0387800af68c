package shadowclient

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/shadowsync/shadowsync/shadowstate"
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
