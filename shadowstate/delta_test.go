package shadowstate

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Equal compares two json.Numbers without going through number, and falls through to
// number only when the other value is not a json.Number. These tests pin the cases
// around that split, through Delta and through Equal directly: values of mixed types,
// numbers of the same value but different text, nulls and empty objects.

func TestDeltaMixedLeaves(t *testing.T) {
	type num = json.Number
	cases := []struct {
		name              string
		desired, reported any  // the values under key "k"; reported absent if missing
		missing           bool // reported has no "k"
		differ            bool // want {"k": desired} as the delta, else nil
		extraKeys         bool // reported holds keys desired lacks: no delta, yet not Equal
	}{
		{name: "json.Number and float64 of one value", desired: num("1.5"), reported: 1.5},
		{name: "json.Number and int of one value", desired: num("7"), reported: 7},
		{name: "float64 and json.Number of one value", desired: 100.0, reported: num("1e2")},
		{name: "int and json.Number of one value", desired: 3, reported: num("3.0")},
		{name: "int and float64 of one value", desired: 2, reported: 2.0},
		{name: "json.Number and int of other values", desired: num("2"), reported: 1, differ: true},
		{name: "numbers by value, different text", desired: num("1"), reported: num("1.0")},
		{name: "upper-case exponent", desired: num("1E2"), reported: num("100")},
		{name: "minus zero", desired: num("-0"), reported: num("0")},
		{name: "integers differing in the last digit", desired: num("123456789012345678901"), reported: num("123456789012345678902"), differ: true},
		{name: "string against json.Number of the same text", desired: "1", reported: num("1"), differ: true},
		{name: "json.Number against string of the same text", desired: num("1"), reported: "1", differ: true},
		{name: "bool against string", desired: true, reported: "true", differ: true},
		{name: "bool against number", desired: false, reported: num("0"), differ: true},
		{name: "bools differ", desired: true, reported: false, differ: true},
		{name: "strings differ", desired: "a", reported: "b", differ: true},
		{name: "null against null", desired: nil, reported: nil},
		{name: "null against missing", desired: nil, missing: true, differ: true},
		{name: "null against false", desired: nil, reported: false, differ: true},
		{name: "false against null", desired: false, reported: nil, differ: true},
		{name: "string against null", desired: "", reported: nil, differ: true},
		{name: "empty object against empty object", desired: Object{}, reported: Object{}},
		{name: "empty object against an object", desired: Object{}, reported: Object{"x": num("1")}, extraKeys: true},
		{name: "empty object against missing", desired: Object{}, missing: true, differ: true},
		{name: "empty object against a scalar", desired: Object{}, reported: num("0"), differ: true},
		{name: "empty object against null", desired: Object{}, reported: nil, differ: true},
		{name: "object against a non-object", desired: Object{"x": num("1")}, reported: "x", differ: true},
		{name: "object against an array", desired: Object{"x": num("1")}, reported: []any{num("1")}, differ: true},
		{name: "array against an object", desired: []any{num("1")}, reported: Object{"x": num("1")}, differ: true},
		{name: "scalar against an object", desired: num("5"), reported: Object{}, differ: true},
		{name: "array of mixed numbers", desired: []any{num("1"), "x", true, nil}, reported: []any{1.0, "x", true, nil}},
		{name: "array with a string for a number", desired: []any{"1"}, reported: []any{num("1")}, differ: true},
		{name: "array with a bool for a number", desired: []any{true}, reported: []any{num("1")}, differ: true},
		{name: "array with null for a string", desired: []any{""}, reported: []any{nil}, differ: true},
		{name: "arrays of objects with mixed numbers", desired: []any{Object{"a": num("1"), "b": "s"}}, reported: []any{Object{"a": 1, "b": "s"}}},
		{name: "arrays of objects, string for number", desired: []any{Object{"a": "1"}}, reported: []any{Object{"a": num("1")}}, differ: true},
		{name: "arrays of objects, key missing", desired: []any{Object{"a": nil}}, reported: []any{Object{"b": nil}}, differ: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			desired := Object{"k": tc.desired, "same": "s"}
			reported := Object{"same": "s", "only": num("1")}
			if !tc.missing {
				reported["k"] = tc.reported
			}
			var want Object
			if tc.differ {
				want = Object{"k": tc.desired}
			}
			if diff := cmp.Diff(want, Delta(desired, reported)); diff != "" {
				t.Errorf("Delta (-want +got):\n%s", diff)
			}
			// One level down the same comparison runs in the recursion.
			nested := Delta(Object{"o": desired}, Object{"o": reported})
			if want != nil {
				want = Object{"o": want}
			}
			if diff := cmp.Diff(want, nested); diff != "" {
				t.Errorf("nested Delta (-want +got):\n%s", diff)
			}
			if tc.missing {
				return
			}
			// Equal agrees with Delta, both ways round and inside an array and an object.
			for _, pair := range [][2]any{
				{tc.desired, tc.reported}, {tc.reported, tc.desired},
				{[]any{tc.desired}, []any{tc.reported}}, {Object{"k": tc.desired}, Object{"k": tc.reported}},
			} {
				if got, want := Equal(pair[0], pair[1]), !tc.differ && !tc.extraKeys; got != want {
					t.Errorf("Equal(%#v, %#v) = %v, want %v", pair[0], pair[1], got, want)
				}
			}
		})
	}
}

func TestDeltaSharesDesiredValues(t *testing.T) {
	arr := []any{json.Number("1")}
	sub := Object{"x": json.Number("1")}
	d := Delta(Object{"a": arr, "o": Object{"s": sub, "n": json.Number("2")}}, Object{"a": []any{}, "o": Object{"n": json.Number("2")}})
	got, ok := d["a"].([]any)
	if !ok || &got[0] != &arr[0] {
		t.Errorf("the array in the delta is not desired's: %#v", d["a"])
	}
	o, ok := d["o"].(Object)
	if !ok || len(o) != 1 {
		t.Fatalf(`delta "o" = %#v, want only key "s"`, d["o"])
	}
	if s, ok := o["s"].(Object); !ok || len(s) != 1 {
		t.Errorf(`delta "o"."s" = %#v, want desired's object`, o["s"])
	} else {
		s["probe"] = true // the same map, so desired's sees the key
		if _, ok := sub["probe"]; !ok {
			t.Error(`delta "o"."s" is a copy, not desired's object`)
		}
	}
}
