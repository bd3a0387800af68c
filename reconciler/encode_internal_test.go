package reconciler

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/shadowsync/shadowsync/shadowstate"
)

// TestEncodeObjectMatchesMarshal: encodeObject writes what json.Marshal writes, for
// objects it writes itself and for those it hands over (strings json.Marshal
// escapes, numbers it checks, values that are not JSON's own types).
func TestEncodeObjectMatchesMarshal(t *testing.T) {
	strs := []string{"", "eco", "with space", `q"uote`, `back\slash`, "<b>", "a&b", "tab\t", "é", "日本", "\u2028", "bad\xffutf8", "\x7f"}
	nums := []json.Number{"0", "-0", "12", "-3.5", "1e9", "2E-3", "1.0", "", "01", "1.", ".5", "+1", "1e", "NaN", "0x10"}
	var objs []shadowstate.Object
	for i, s := range strs {
		objs = append(objs, shadowstate.Object{"s": s, s: i%2 == 0})
	}
	for _, n := range nums {
		objs = append(objs, shadowstate.Object{"n": n, "list": []any{n, "x", nil}})
	}
	big := shadowstate.Object{}
	for i := range 40 {
		big[fmt.Sprintf("k%02d", 39-i)] = json.Number(fmt.Sprint(i))
	}
	objs = append(objs,
		nil,
		shadowstate.Object{},
		shadowstate.Object{"seq": json.Number("7"), "setpoint": json.Number("21"), "mode": "eco"},
		shadowstate.Object{"nested": shadowstate.Object{"b": true, "a": shadowstate.Object{"z": nil, "y": []any{}}}, "nilList": []any(nil), "nilObj": shadowstate.Object(nil)},
		shadowstate.Object{"float": 1.5, "int": 3, "typed": []string{"a"}},
		big,
	)
	for _, o := range objs {
		want, werr := json.Marshal(o)
		got, gerr := encodeObject(o)
		if (werr == nil) != (gerr == nil) || !bytes.Equal(got, want) {
			t.Errorf("%#v: got %s (%v), json.Marshal %s (%v)", o, got, gerr, want, werr)
		}
	}
	plain := shadowstate.Object{"seq": json.Number("7"), "setpoint": json.Number("21"), "mode": "eco"}
	if n := testing.AllocsPerRun(100, func() { _, _ = encodeObject(plain) }); n != 1 {
		t.Errorf("%v allocations for a report's object, want 1 (the result)", n)
	}
}
