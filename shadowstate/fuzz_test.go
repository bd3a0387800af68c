package shadowstate

import (
	"encoding/json"
	"testing"
	"time"
)

// canonical decodes text as a stored section would be: an object without nulls or
// empty objects. ok is false when text is not a JSON object.
func canonical(text []byte) (Object, bool) {
	var o Object
	if err := Unmarshal(text, &o); err != nil || o == nil {
		return nil, false
	}
	return Merge(nil, o), true
}

func FuzzDelta(f *testing.F) {
	for _, s := range [][2]string{
		{`{"a":1}`, `{"a":2}`},
		{`{"l":{"c":{"r":1,"g":2}},"x":[1,2]}`, `{"l":{"c":{"r":1}},"x":[2,1],"y":3}`},
		{`{"p":{"x":1}}`, `{"p":5}`},
		{`{"a":1.0,"b":"1"}`, `{"a":1,"b":1}`},
		{`{"a":[{"b":[1]}]}`, `{}`},
	} {
		f.Add([]byte(s[0]), []byte(s[1]))
	}
	f.Fuzz(func(t *testing.T, desiredText, reportedText []byte) {
		desired, ok1 := canonical(desiredText)
		reported, ok2 := canonical(reportedText)
		if !ok1 || !ok2 {
			return
		}
		d := Delta(desired, reported)
		for k := range d {
			if _, ok := desired[k]; !ok {
				t.Fatalf("delta key %q is not in desired", k)
			}
		}
		if Delta(desired, desired) != nil {
			t.Fatalf("a state differs from itself: %v", Delta(desired, desired))
		}
		// Reporting the delta's content brings reported level with desired.
		if again := Delta(desired, Merge(reported, d)); again != nil {
			t.Fatalf("after reporting the delta %v a delta remains: %v", d, again)
		}
	})
}

func FuzzApply(f *testing.F) {
	for _, s := range []struct {
		base, req string
		op        byte
	}{
		{`{"state":{"desired":{"a":1}}}`, `{"state":{"reported":{"a":1}}}`, 1},
		{`{"state":{"desired":{"a":{"b":1}},"reported":{"a":{"b":2}}}}`, `{"state":{"desired":{"a":{"b":null}}},"clientToken":"x"}`, 1},
		{`{"state":{"desired":{"a":[1,2]}}}`, `{"state":null,"version":1}`, 1},
		{`{"state":{"desired":{"a":1}}}`, `{"state":{"desired":null,"reported":{"z":[true]}}}`, 1},
		{`{"state":{"desired":{"a":1}}}`, `{"clientToken":"g"}`, 0},
		{`{"state":{"desired":{"a":1}}}`, ``, 2},
		{``, `{"state":{"desired":"x"}}`, 1},
		{``, "\xff", 1},
	} {
		f.Add([]byte(s.base), []byte(s.req), s.op)
	}
	ops := [...]Op{OpGet, OpUpdate, OpDelete}
	f.Fuzz(func(t *testing.T, base, req []byte, opIndex byte) {
		now := time.Unix(t0, 0)
		cur := Shadow{ID: ID{Thing: "fuzz"}}
		if out := Apply(cur, OpUpdate, base, now); out.Rejected == nil {
			cur = out.Shadow
		}
		op := ops[int(opIndex)%len(ops)]
		before := mustJSON(t, cur)
		out := Apply(cur, op, req, now.Add(time.Second))
		if mustJSON(t, cur) != before {
			t.Fatalf("Apply modified its input")
		}
		checkMessages(t, out)
		if out.Rejected != nil {
			if mustJSON(t, out.Shadow) != before || out.Accepted != nil || out.Delta != nil || out.Documents != nil {
				t.Fatalf("rejected request %q changed something", req)
			}
			return
		}
		checkStored(t, out.Shadow)
		if op != OpUpdate {
			return
		}
		if got, want := mustJSON(t, out.Delta != nil), mustJSON(t, Delta(out.Shadow.Desired, out.Shadow.Reported) != nil); got != want {
			t.Fatalf("delta published: %s, shadow differs: %s", got, want)
		}
		// The same update again changes nothing but the version and timestamps, unless
		// it carries a version, which now conflicts.
		again := Apply(out.Shadow, op, req, now.Add(2*time.Second))
		if again.Rejected != nil {
			if again.Rejected.Code != 409 {
				t.Fatalf("the same update, accepted once, was then rejected: %v", again.Rejected)
			}
			return
		}
		if !Equal(nilIfEmpty(again.Shadow.Desired), nilIfEmpty(out.Shadow.Desired)) || !Equal(nilIfEmpty(again.Shadow.Reported), nilIfEmpty(out.Shadow.Reported)) {
			t.Fatalf("applying %q twice changed the state", req)
		}
		if again.Shadow.Version != out.Shadow.Version+1 {
			t.Fatalf("version %d after %d", again.Shadow.Version, out.Shadow.Version)
		}
	})
}

func nilIfEmpty(o Object) any {
	if len(o) == 0 {
		return nil
	}
	return o
}

// checkMessages checks that everything the service would publish encodes as JSON.
func checkMessages(t *testing.T, out Outcome) {
	t.Helper()
	for _, m := range []any{out.Accepted, out.Rejected, out.Delta, out.Documents} {
		if m == nil {
			continue
		}
		if _, err := json.Marshal(m); err != nil {
			t.Fatalf("message %T does not encode: %v", m, err)
		}
	}
}

// checkStored checks the invariants of a stored shadow: canonical sections within
// AWS's limits, with metadata for exactly the stored leaves.
func checkStored(t *testing.T, s Shadow) {
	t.Helper()
	for _, sec := range []struct {
		name        string
		state, meta Object
	}{{"desired", s.Desired, s.MetaDesired}, {"reported", s.Reported, s.MetaReported}} {
		if sec.state == nil {
			if sec.meta != nil {
				t.Fatalf("%s: metadata without state", sec.name)
			}
			continue
		}
		if !Equal(Merge(nil, sec.state), sec.state) {
			t.Fatalf("%s holds nulls or empty objects: %s", sec.name, mustJSON(t, sec.state))
		}
		if depth(sec.state) > MaxDepth {
			t.Fatalf("%s nests %d levels", sec.name, depth(sec.state))
		}
		checkMetaShape(t, sec.state, sec.meta)
	}
	if stateSize(s.Desired)+stateSize(s.Reported) > MaxStateBytes {
		t.Fatalf("stored state is larger than %d bytes", MaxStateBytes)
	}
}

func checkMetaShape(t *testing.T, state any, meta any) {
	t.Helper()
	switch v := state.(type) {
	case Object:
		m, ok := meta.(Object)
		if !ok || len(m) != len(v) {
			t.Fatalf("metadata %s does not mirror %s", mustJSON(t, meta), mustJSON(t, state))
		}
		for k, e := range v {
			checkMetaShape(t, e, m[k])
		}
	case []any:
		m, ok := meta.([]any)
		if !ok || len(m) != len(v) {
			t.Fatalf("metadata %s does not mirror %s", mustJSON(t, meta), mustJSON(t, state))
		}
		for i, e := range v {
			checkMetaShape(t, e, m[i])
		}
	default:
		if _, ok := meta.(Stamp); !ok {
			t.Fatalf("leaf metadata %v is not a timestamp", meta)
		}
	}
}
