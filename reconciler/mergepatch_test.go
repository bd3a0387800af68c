package reconciler

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"

	"github.com/shadowsync/shadowsync/shadowstate"
)

// mergePatch computes what jsonpatch.CreateMergePatch computes, the reference the
// reconciler used before.
func TestMergePatchMatchesRFC7396(t *testing.T) {
	cases := [][2]string{
		{`{}`, `{}`},
		{`{"a":1}`, `{"a":1}`},
		{`{"a":1}`, `{"a":2}`},
		{`{"a":1}`, `{}`},
		{`{}`, `{"a":{"b":[1,2]}}`},
		{`{"a":{"b":1,"c":2}}`, `{"a":{"b":1}}`},
		{`{"a":{"b":1}}`, `{"a":{"b":1,"c":{"d":null}}}`},
		{`{"a":[1,2]}`, `{"a":[1,2,3]}`},
		{`{"a":[1,{"x":1}]}`, `{"a":[1,{"x":2}]}`},
		{`{"a":{"b":1}}`, `{"a":5}`},
		{`{"a":5}`, `{"a":{"b":1}}`},
		{`{"a":"s","b":true,"c":null}`, `{"a":"t","b":false,"c":null}`},
		{`{"a":{"b":{"c":{"d":1}}}}`, `{"a":{"b":{"c":{}}}}`},
		{`{"a":{}}`, `{"a":{}}`},
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		cases = append(cases, [2]string{randomState(r, 3), randomState(r, 3)})
	}
	for _, c := range cases {
		var before, after shadowstate.Object
		if err := shadowstate.Unmarshal([]byte(c[0]), &before); err != nil {
			t.Fatal(err)
		}
		if err := shadowstate.Unmarshal([]byte(c[1]), &after); err != nil {
			t.Fatal(err)
		}
		got := mergePatch(before, after)
		refJSON, err := jsonpatch.CreateMergePatch([]byte(c[0]), []byte(c[1]))
		if err != nil {
			t.Fatal(err)
		}
		var ref shadowstate.Object
		if err := shadowstate.Unmarshal(refJSON, &ref); err != nil {
			t.Fatal(err)
		}
		if len(ref) == 0 {
			ref = nil
		}
		if !shadowstate.Equal(got, ref) && !(got == nil && ref == nil) {
			gj, _ := json.Marshal(got)
			t.Errorf("%s → %s: patch %s, want %s", c[0], c[1], gj, refJSON)
		}
	}
}

// randomState is a small random JSON object, to exercise mergePatch broadly.
func randomState(r *rand.Rand, depth int) string {
	n := r.IntN(4)
	o := shadowstate.Object{}
	for range n {
		k := string(rune('a' + r.IntN(4)))
		switch v := r.IntN(6); {
		case v == 0 && depth > 0:
			var sub shadowstate.Object
			_ = json.Unmarshal([]byte(randomState(r, depth-1)), &sub)
			o[k] = sub
		case v == 1:
			o[k] = []any{json.Number(fmt.Sprint(r.IntN(3)))}
		case v == 2:
			o[k] = r.IntN(2) == 0
		default:
			o[k] = json.Number(fmt.Sprint(r.IntN(3)))
		}
	}
	b, _ := json.Marshal(o)
	return string(b)
}
