package reconciler

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/shadowsync/shadowsync/shadowstate"
)

func obj(t *testing.T, s string) shadowstate.Object {
	t.Helper()
	var o shadowstate.Object
	if err := shadowstate.Unmarshal([]byte(s), &o); err != nil {
		t.Fatalf("%s: %v", s, err)
	}
	return o
}

type inner struct {
	A int    `json:"a"`
	B string `json:"b"`
}

type Promoted struct {
	P    int `json:"p"`
	Same int // cancelled out by the other embedded Same at the same depth
}

type Other struct {
	Same int
	Tie  int `json:"tie"`
}

type shapes struct {
	Promoted
	*Other
	Renamed  bool              `json:"renamed"`
	Skipped  int               `json:"-"`
	Dash     int               `json:"-,"`
	Untagged float32           // named by the field
	Nested   inner             `json:"nested"`
	List     []inner           `json:"list"`
	Arr      [2]uint8          `json:"arr"`
	Bytes    []byte            `json:"bytes"`
	Keyed    map[int]string    `json:"keyed"`
	When     time.Time         `json:"when"`
	Raw      json.RawMessage   `json:"raw"`
	Num      json.Number       `json:"num"`
	Quoted   int               `json:"quoted,string"`
	Any      any               `json:"any"`
	Tie      int               `json:"tie"` // shallower than Other.Tie: wins
	Obj      map[string]any    `json:"obj"`
	Ptr      *inner            `json:"ptr"`
	Names    map[string]*inner `json:"names"`
	unexp    int
}

// The reconciler's JSON form of a device state is encoding/json's for every shape
// (promotion and name conflicts, tags, ",string", marshalers, maps with int keys),
// as long as no field is omitempty or nil.
func TestJSONFormMatchesEncodingJSON(t *testing.T) {
	v := shapes{
		Promoted: Promoted{P: 1, Same: 2}, Other: &Other{Same: 3, Tie: 4},
		Renamed: true, Skipped: 5, Dash: 6, Untagged: 1.5,
		Nested: inner{A: 7, B: "x"}, List: []inner{{A: 1}, {B: "y"}}, Arr: [2]uint8{1, 2},
		Bytes: []byte("hi"), Keyed: map[int]string{3: "three"},
		When: time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC), Raw: json.RawMessage(`{"k":[1,2]}`),
		Num: "12.50", Quoted: 42, Any: map[string]any{"z": []any{true, nil}}, Tie: 9,
		Obj: map[string]any{"n": json.Number("1e3")}, Ptr: &inner{A: 8},
		Names: map[string]*inner{"a": {A: 1}}, unexp: 10,
	}
	want, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	got, err := reportPatch(nil, &v)
	if err != nil {
		t.Fatal(err)
	}
	if !shadowstate.Equal(obj(t, string(want)), got) {
		t.Errorf("JSON form differs from encoding/json's:\ngot  %s\nwant %s", jsonOf(got), want)
	}
}

type light struct {
	On         bool     `json:"on"`
	Brightness int      `json:"brightness,omitempty"`
	Color      string   `json:"color,omitempty"`
	Level      *int     `json:"level,omitempty"`
	Cfg        lcfg     `json:"cfg"`
	Tags       []string `json:"tags,omitempty"`
}

type lcfg struct {
	Fade int `json:"fade,omitempty"`
}

func TestReportPatch(t *testing.T) {
	five := 5
	cases := []struct {
		name   string
		stored string
		v      light
		want   string // "" for no patch
	}{
		{"zero values absent from reported are written, omitempty or not", `{}`, light{},
			`{"on":false,"brightness":0,"color":"","cfg":{"fade":0}}`},
		{"nothing when reported holds every value", `{"on":false,"brightness":0,"color":"","cfg":{"fade":0}}`, light{}, ""},
		{"numbers compare by value", `{"on":true,"brightness":60.0,"color":"red","cfg":{"fade":0}}`, light{On: true, Brightness: 60, Color: "red"}, ""},
		{"only what differs, nested key by key", `{"on":true,"brightness":60,"color":"red","cfg":{"fade":1,"curve":"log"}}`,
			light{On: true, Brightness: 60, Color: "blue"}, `{"color":"blue","cfg":{"fade":0}}`},
		{"keys the type does not declare are never touched", `{"on":true,"brightness":1,"color":"","cfg":{"fade":0},"status":{"ok":true},"fw":"1.2"}`,
			light{On: true, Brightness: 1}, ""},
		{"nil pointers and slices are not written and delete nothing", `{"on":true,"brightness":1,"color":"","cfg":{"fade":0},"level":3,"tags":["a"]}`,
			light{On: true, Brightness: 1}, ""},
		{"a pointer to zero is written", `{"on":true,"brightness":1,"color":"","cfg":{"fade":0},"level":3}`,
			light{On: true, Brightness: 1, Level: new(int)}, `{"level":0}`},
		{"an empty slice is written", `{"on":true,"brightness":1,"color":"","cfg":{"fade":0}}`,
			light{On: true, Brightness: 1, Tags: []string{}}, `{"tags":[]}`},
		{"an object replaces a scalar", `{"on":true,"brightness":1,"color":"","cfg":7,"level":5}`,
			light{On: true, Brightness: 1, Level: &five}, `{"cfg":{"fade":0}}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := reportPatch(obj(t, c.stored), &c.v)
			if err != nil {
				t.Fatal(err)
			}
			var want shadowstate.Object
			if c.want != "" {
				want = obj(t, c.want)
			}
			if !shadowstate.Equal(want, got) {
				t.Errorf("patch:\ngot  %s\nwant %s", jsonOf(got), jsonOf(want))
			}
		})
	}
}

func TestReportPatchRefusesValuesWithoutJSONForm(t *testing.T) {
	type bad struct {
		F float64 `json:"f"`
		C chan int
	}
	nan := bad{F: 0}
	nan.F = nan.F / nan.F
	if _, err := reportPatch(nil, &nan); err == nil {
		t.Error("NaN encoded without error")
	}
	if _, err := reportPatch(nil, &bad{C: make(chan int)}); err == nil {
		t.Error("a channel encoded without error")
	}
	s := "not an object"
	if _, err := reportPatch(nil, &s); err == nil {
		t.Error("a string device state encoded without error")
	}
}

func TestDeleteReportedWritesNullsForStoredKeysOnly(t *testing.T) {
	stored := obj(t, `{"color":"red","lights":{"porch":{"on":true},"hall":{"on":false}},"old":1}`)
	patch := withDeletes(obj(t, `{"color":"blue"}`), stored, [][]string{{"color"}, {"lights", "porch"}, {"old"}, {"missing"}, {"lights", "attic"}})
	want := obj(t, `{"color":null,"lights":{"porch":null},"old":null}`)
	if !shadowstate.Equal(want, patch) {
		t.Errorf("patch:\ngot  %s\nwant %s", jsonOf(patch), jsonOf(want))
	}
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
