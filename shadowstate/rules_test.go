package shadowstate

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func obj(t testing.TB, s string) Object {
	t.Helper()
	if s == "" {
		return nil
	}
	var o Object
	if err := Unmarshal([]byte(s), &o); err != nil {
		t.Fatalf("decode %s: %v", s, err)
	}
	return o
}

func TestDelta(t *testing.T) {
	cases := []struct {
		name, desired, reported, want string
	}{
		{"no desired, no delta", ``, `{"a":1}`, ``},
		{"no reported, the whole desired", `{"a":1,"b":{"c":2}}`, ``, `{"a":1,"b":{"c":2}}`},
		{"equal values, no delta", `{"a":1,"b":"x","c":[1,2],"d":{"e":true}}`, `{"a":1,"b":"x","c":[1,2],"d":{"e":true}}`, ``},
		{"missing key counts", `{"a":1,"b":2}`, `{"a":1}`, `{"b":2}`},
		{"reported-only keys never appear", `{"a":1}`, `{"a":1,"z":9}`, ``},
		{"nested objects recurse", `{"l":{"on":true,"c":{"r":1,"g":2}}}`, `{"l":{"on":true,"c":{"r":1,"g":3}}}`, `{"l":{"c":{"g":2}}}`},
		{"object against scalar travels whole", `{"p":{"x":1,"y":2}}`, `{"p":5}`, `{"p":{"x":1,"y":2}}`},
		{"scalar against object", `{"p":5}`, `{"p":{"x":1}}`, `{"p":5}`},
		{"arrays compare whole and in order", `{"a":[1,2]}`, `{"a":[2,1]}`, `{"a":[1,2]}`},
		{"arrays of objects compare deeply", `{"a":[{"x":1}]}`, `{"a":[{"x":1}]}`, ``},
		{"array length differs", `{"a":[1,2]}`, `{"a":[1,2,3]}`, `{"a":[1,2]}`},
		{"numbers by value", `{"a":1,"b":1e2,"c":0.5}`, `{"a":1.0,"b":100,"c":5e-1}`, ``},
		{"huge integers compare exactly", `{"a":123456789012345678901}`, `{"a":123456789012345678902}`, `{"a":123456789012345678901}`},
		{"string is not number", `{"a":"1"}`, `{"a":1}`, `{"a":"1"}`},
		{"false is not zero", `{"a":false}`, `{"a":0}`, `{"a":false}`},
		{"null in desired against a value", `{"a":null}`, `{"a":1}`, `{"a":null}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := Delta(obj(t, tc.desired), obj(t, tc.reported))
			if diff := cmp.Diff(obj(t, tc.want), got); diff != "" {
				t.Errorf("Delta (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMerge(t *testing.T) {
	cases := []struct {
		name, dst, patch, want string
	}{
		{"into nothing", ``, `{"a":1}`, `{"a":1}`},
		{"nulls into nothing leave nothing", ``, `{"a":null,"b":{"c":null}}`, ``},
		{"deep merge", `{"a":{"b":1,"c":2}}`, `{"a":{"c":3,"d":4}}`, `{"a":{"b":1,"c":3,"d":4}}`},
		{"null deletes", `{"a":1,"b":2}`, `{"a":null}`, `{"b":2}`},
		{"deleting everything leaves nothing", `{"a":{"b":1}}`, `{"a":{"b":null}}`, ``},
		{"arrays replace", `{"a":[1,2,3]}`, `{"a":[4]}`, `{"a":[4]}`},
		{"empty object onto object changes nothing", `{"a":{"b":1}}`, `{"a":{}}`, `{"a":{"b":1}}`},
		{"empty object onto scalar removes it", `{"a":1,"z":0}`, `{"a":{}}`, `{"z":0}`},
		{"object onto scalar replaces without its nulls", `{"a":1}`, `{"a":{"b":2,"c":null}}`, `{"a":{"b":2}}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dst, patch := obj(t, tc.dst), obj(t, tc.patch)
			dstText, patchText := mustJSON(t, dst), mustJSON(t, patch)
			got := Merge(dst, patch)
			if diff := cmp.Diff(obj(t, tc.want), got); diff != "" {
				t.Errorf("Merge (-want +got):\n%s", diff)
			}
			if mustJSON(t, dst) != dstText || mustJSON(t, patch) != patchText {
				t.Errorf("Merge modified its inputs")
			}
		})
	}
}

func TestEqualWithGoNumbers(t *testing.T) {
	// Objects built by hand may hold Go numbers; they compare with decoded ones by value.
	if !Equal(Object{"a": 1, "b": 2.5}, obj(t, `{"a":1,"b":2.5}`)) {
		t.Error("Go numbers and json.Number of the same value compare unequal")
	}
	if Equal(Object{"a": 1}, obj(t, `{"a":2}`)) {
		t.Error("different numbers compare equal")
	}
	if Equal(struct{}{}, struct{}{}) {
		t.Error("values that are not JSON compare equal")
	}
}

func TestTopics(t *testing.T) {
	classic := ID{Thing: "Pump-7"}
	named := ID{Thing: "Pump-7", Name: "motor"}
	if got, want := named.Topic(OpUpdate, DeltaKind), "$aws/things/Pump-7/shadow/name/motor/update/delta"; got != want {
		t.Errorf("named delta topic %q, want %q", got, want)
	}
	if got, want := classic.Topic(OpGet, Request), "$aws/things/Pump-7/shadow/get"; got != want {
		t.Errorf("classic get topic %q, want %q", got, want)
	}
	if got, want := (ID{Thing: "+"}).Topic(OpUpdate, DeltaKind), "$aws/things/+/shadow/update/delta"; got != want {
		t.Errorf("wildcard filter %q, want %q", got, want)
	}

	valid := []struct {
		topic string
		id    ID
		op    Op
		kind  Kind
	}{
		{"$aws/things/Pump-7/shadow/update", classic, OpUpdate, Request},
		{"$aws/things/Pump-7/shadow/update/accepted", classic, OpUpdate, Accepted},
		{"$aws/things/Pump-7/shadow/update/documents", classic, OpUpdate, Documents},
		{"$aws/things/Pump-7/shadow/get/rejected", classic, OpGet, Rejected},
		{"$aws/things/Pump-7/shadow/delete", classic, OpDelete, Request},
		{"$aws/things/Pump-7/shadow/name/motor/update/delta", named, OpUpdate, DeltaKind},
		{"$aws/things/Pump-7/shadow/name/motor/get", named, OpGet, Request},
		{"$aws/things/a:b_c-d/shadow/name/$package/get", ID{Thing: "a:b_c-d", Name: "$package"}, OpGet, Request},
	}
	for _, v := range valid {
		id, op, kind, ok := ParseTopic(v.topic)
		if !ok || id != v.id || op != v.op || kind != v.kind {
			t.Errorf("ParseTopic(%q) = %v %q %q %v, want %v %q %q true", v.topic, id, op, kind, ok, v.id, v.op, v.kind)
		}
		if ok && id.Topic(op, kind) != v.topic {
			t.Errorf("Topic does not rebuild %q", v.topic)
		}
	}
	for _, bad := range []string{
		"", "$aws/things/Pump-7/shadow", "$aws/things/Pump-7/shadow/list",
		"$aws/things/Pump-7/shadow/get/delta", "$aws/things/Pump-7/shadow/delete/documents",
		"$aws/things/Pump-7/shadow/update/accepted/more", "$aws/things/Pump 7/shadow/get",
		"$aws/things//shadow/get", "$aws/things/Pump-7/shadow/name//get", "$aws/things/Pump-7/shadow/name/motor",
		"$aws/things/+/shadow/get", "$aws/things/Pump-7/jobs/get", "things/Pump-7/shadow/get",
		"$aws/things/" + strings.Repeat("t", 129) + "/shadow/get",
		"$aws/things/Pump-7/shadow/name/" + strings.Repeat("s", 65) + "/get",
	} {
		if _, _, _, ok := ParseTopic(bad); ok {
			t.Errorf("ParseTopic(%q) accepted a topic that is not a shadow topic", bad)
		}
	}
}

func TestValidateNames(t *testing.T) {
	ok := []ID{{Thing: "a"}, {Thing: strings.Repeat("t", 128)}, {Thing: "x", Name: strings.Repeat("s", 64)}, {Thing: "A-9_:z", Name: "$package"}}
	for _, id := range ok {
		if err := id.Validate(); err != nil {
			t.Errorf("%v: %v", id, err)
		}
	}
	bad := []struct {
		id   ID
		text string
	}{
		{ID{}, "empty thing name"},
		{ID{Thing: strings.Repeat("t", 129)}, "129 bytes"},
		{ID{Thing: "a/b"}, `'/'`},
		{ID{Thing: "$x"}, `'$'`},
		{ID{Thing: "x", Name: strings.Repeat("s", 65)}, "shadow name is 65 bytes"},
		{ID{Thing: "x", Name: "a b"}, `shadow name "a b"`},
		{ID{Thing: "thermo-é"}, `'é'`},
	}
	for _, b := range bad {
		err := b.id.Validate()
		if !errors.Is(err, ErrInvalidName) || !strings.Contains(err.Error(), b.text) {
			t.Errorf("Validate(%v) = %v, want ErrInvalidName mentioning %s", b.id, err, b.text)
		}
	}
}

func TestShadowJSONRoundTrip(t *testing.T) {
	cur := Shadow{ID: ID{Thing: "t", Name: "n"}}
	for i, req := range []string{
		`{"state":{"desired":{"a":{"timestamp":5},"timestamp":1,"arr":[1,{"b":2}]},"reported":{"big":123456789012345678901}}}`,
		`{"state":{"desired":{"c":true}}}`,
	} {
		out := Apply(cur, OpUpdate, []byte(req), time.Unix(t0+int64(i), 0))
		if out.Rejected != nil {
			t.Fatal(out.Rejected)
		}
		cur = out.Shadow
	}
	deleted := Apply(Apply(cur, OpUpdate, []byte(`{"state":{}}`), time.Unix(t0, 0)).Shadow, OpDelete, nil, time.Unix(t0+9, 0)).Shadow
	for _, s := range []Shadow{cur, deleted} {
		data, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		var back Shadow
		if err := json.Unmarshal(data, &back); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(s, back); diff != "" {
			t.Errorf("round trip through %s changed the shadow (-before +after):\n%s", data, diff)
		}
	}
}

func TestErrorIsMatchedWithAs(t *testing.T) {
	out := Apply(Shadow{ID: ID{Thing: "t"}}, OpGet, nil, time.Unix(t0, 0))
	var err error = out.Rejected
	var se *Error
	if !errors.As(err, &se) || se.Code != 404 {
		t.Fatalf("errors.As on %v: %v", err, se)
	}
	if !strings.Contains(err.Error(), "404") || !strings.Contains(err.Error(), "No shadow exists") {
		t.Errorf("error text %q lacks the code or AWS's message", err)
	}
	if got := Apply(Shadow{}, Op("list"), nil, time.Unix(t0, 0)); got.Rejected == nil || got.Rejected.Code != 400 {
		t.Errorf("unknown operation not rejected: %+v", got)
	}
}

func TestUpdateRequestEncoding(t *testing.T) {
	v := int64(0)
	cases := []struct {
		req  UpdateRequest
		want string
	}{
		{UpdateRequest{State: &StateUpdate{Desired: json.RawMessage(`{"a":1}`)}, ClientToken: "c"}, `{"state":{"desired":{"a":1}},"clientToken":"c"}`},
		{UpdateRequest{State: &StateUpdate{Reported: json.RawMessage(`null`)}, Version: &v}, `{"state":{"reported":null},"version":0}`},
		{UpdateRequest{}, `{"state":null}`},
	}
	for _, tc := range cases {
		got := mustJSON(t, tc.req)
		if got != tc.want {
			t.Errorf("encoded %s, want %s", got, tc.want)
		}
		// Every encoded request is one the service accepts.
		if out := Apply(Shadow{ID: ID{Thing: "t"}}, OpUpdate, []byte(got), time.Unix(t0, 0)); out.Rejected != nil {
			t.Errorf("service rejected %s: %v", got, out.Rejected)
		}
	}
}
