package jsoncompare

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	jsonv2 "github.com/go-json-experiment/json"

	"github.com/shadowsync/shadowsync/shadowstate"
)

// deviceState is the state of a device with about size bytes of compact JSON: a
// thermostat's few keys for a small one, zones of nested objects, arrays, strings and
// booleans for larger ones. variant changes a few leaves.
func deviceState(size, variant int) shadowstate.Object {
	if size < 300 {
		return shadowstate.Object{
			"seq": json.Number(fmt.Sprint(7 + variant)), "setpoint": json.Number("21.5"), "mode": "heat",
			"fan": shadowstate.Object{"speed": json.Number(fmt.Sprint(2 + variant%2)), "auto": true},
		}
	}
	s := shadowstate.Object{}
	for i := 0; ; i++ {
		s[fmt.Sprintf("zone%02d", i)] = shadowstate.Object{
			"name":     fmt.Sprintf("Zone %d, north wing", i),
			"enabled":  i%2 == 0,
			"setpoint": shadowstate.Object{"heat": json.Number(fmt.Sprint(18 + i%4)), "cool": json.Number(fmt.Sprint(24 + (i+variant)%3)), "mode": "auto"},
			"fan":      shadowstate.Object{"speed": json.Number(fmt.Sprint(i % 5)), "profile": []any{json.Number("10"), json.Number("40"), json.Number("80")}},
			"schedule": []any{shadowstate.Object{"at": "06:30", "heat": json.Number("20.5")}, shadowstate.Object{"at": "22:00", "heat": json.Number(fmt.Sprint(16 + variant%2))}},
		}
		if b, _ := json.Marshal(s); len(b) >= size {
			return s
		}
	}
}

// messages are the payloads of one shadow whose state holds about size bytes, as the
// service publishes them: an /update/documents message, an /update/delta message,
// an /update/accepted reply, and the state object alone.
type messages struct {
	documents, delta, accepted, state []byte
}

func shadowMessages(tb testing.TB, size int) messages {
	tb.Helper()
	enc := func(v any) []byte {
		b, err := json.Marshal(v)
		if err != nil {
			tb.Fatal(err)
		}
		return b
	}
	now := time.Unix(1718000000, 0)
	half := size * 7 / 16 // the service counts both sections against its 8 KB limit
	s := shadowstate.Shadow{ID: shadowstate.ID{Thing: "bench"}}
	out := shadowstate.Apply(s, shadowstate.OpUpdate, enc(shadowstate.UpdateRequest{State: &shadowstate.StateUpdate{
		Desired: enc(deviceState(half, 0)), Reported: enc(deviceState(half, 1)),
	}}), now)
	if out.Rejected != nil {
		tb.Fatal(out.Rejected)
	}
	out = shadowstate.Apply(out.Shadow, shadowstate.OpUpdate, enc(shadowstate.UpdateRequest{
		State: &shadowstate.StateUpdate{Reported: enc(deviceState(half, 0))}, ClientToken: "r-42",
	}), now.Add(time.Second))
	if out.Rejected != nil || out.Documents == nil {
		tb.Fatal("report not accepted", out.Rejected)
	}
	m := messages{documents: enc(out.Documents), accepted: enc(out.Accepted), state: enc(deviceState(size, 0))}
	out = shadowstate.Apply(out.Shadow, shadowstate.OpUpdate, enc(shadowstate.UpdateRequest{State: &shadowstate.StateUpdate{Desired: enc(deviceState(half, 2))}}), now.Add(2*time.Second))
	if out.Delta == nil {
		tb.Fatal("no delta")
	}
	m.delta = enc(out.Delta)
	return m
}

var sizes = []struct {
	name  string
	bytes int
}{{"200B", 200}, {"1KB", 1000}, {"8KB", 8000}}

// decoders are the three implementations of each operation.
var decoders = []struct {
	name      string
	unmarshal func([]byte, any) error
	token     func([]byte) (string, error)
	stateOnly func([]byte, *shadowstate.DocumentsMessage) error
}{
	{"fastjson", shadowstate.Unmarshal, shadowstate.ReplyToken, shadowstate.UnmarshalDocumentsStateOnly},
	{"jsonv2", libUnmarshal, libReplyToken, libDocumentsStateOnly},
	{"encoding-json", stdUnmarshal, stdReplyToken, stdDocumentsStateOnly},
}

func stdReplyToken(data []byte) (string, error) {
	var t struct {
		ClientToken string `json:"clientToken"`
	}
	err := stdUnmarshal(data, &t)
	return t.ClientToken, err
}

func stdDocumentsStateOnly(data []byte, m *shadowstate.DocumentsMessage) error {
	if err := stdUnmarshal(data, m); err != nil {
		return err
	}
	m.Current.Metadata = shadowstate.DocumentMetadata{}
	if m.Previous != nil {
		m.Previous = &shadowstate.Snapshot{Version: m.Previous.Version}
	}
	return nil
}

// operation is one of shadowstate's decoding operations on one payload, run by
// decoder number dec (an index into decoders).
type operation struct {
	name    string
	payload []byte
	run     func(dec int, p []byte) error
}

func operations(m messages) []operation {
	return []operation{
		{"documents", m.documents, func(d int, p []byte) error {
			var v shadowstate.DocumentsMessage
			return decoders[d].unmarshal(p, &v)
		}},
		{"stateonly", m.documents, func(d int, p []byte) error {
			var v shadowstate.DocumentsMessage
			return decoders[d].stateOnly(p, &v)
		}},
		{"delta", m.delta, func(d int, p []byte) error {
			var v shadowstate.DeltaMessage
			return decoders[d].unmarshal(p, &v)
		}},
		{"object", m.state, func(d int, p []byte) error {
			var v shadowstate.Object
			return decoders[d].unmarshal(p, &v)
		}},
		{"replytoken", m.accepted, func(d int, p []byte) error {
			t, err := decoders[d].token(p)
			if err == nil && t != "r-42" {
				err = fmt.Errorf("token %q", t)
			}
			return err
		}},
	}
}

// BenchmarkDecode runs each operation of each implementation on the same payload as
// sub-benchmarks of their own: the source of B/op and allocs/op. For times, prefer
// BenchmarkInterleaved.
func BenchmarkDecode(b *testing.B) {
	for _, sz := range sizes {
		for _, op := range operations(shadowMessages(b, sz.bytes)) {
			for d := range decoders {
				b.Run(fmt.Sprintf("%s/%s/%s", op.name, sz.name, decoders[d].name), func(b *testing.B) {
					b.SetBytes(int64(len(op.payload)))
					b.ReportAllocs()
					for b.Loop() {
						if err := op.run(d, op.payload); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		}
	}
}

// BenchmarkInterleaved runs the three implementations of an operation in turn in
// every iteration (in a rotating order) and reports each one's time per operation
// and its ratio to encoding/json's: on a shared machine, load that comes and goes
// during the run falls on all three alike, where separate sub-benchmarks seconds
// apart may each see different load.
func BenchmarkInterleaved(b *testing.B) {
	const batch = 4 // calls per timing, so that reading the clock costs little
	for _, sz := range sizes {
		for _, op := range operations(shadowMessages(b, sz.bytes)) {
			b.Run(op.name+"/"+sz.name, func(b *testing.B) {
				spent := make([]time.Duration, len(decoders))
				calls, turn := 0, 0
				for b.Loop() {
					for i := range decoders {
						d := (turn + i) % len(decoders)
						start := time.Now()
						for range batch {
							if err := op.run(d, op.payload); err != nil {
								b.Fatal(err)
							}
						}
						spent[d] += time.Since(start)
					}
					turn++
					calls += batch
				}
				for d := range decoders {
					b.ReportMetric(float64(spent[d].Nanoseconds())/float64(calls), decoders[d].name+"-ns/op")
				}
				b.ReportMetric(float64(spent[0])/float64(spent[2]), "fastjson/encoding-json")
				b.ReportMetric(float64(spent[1])/float64(spent[2]), "jsonv2/encoding-json")
			})
		}
	}
}

// BenchmarkEncode encodes a state object as the reconciler encodes its report
// (encoding/json.Marshal of an Object) and with the library, set to write the same
// bytes (members sorted, json.Number as its literal).
func BenchmarkEncode(b *testing.B) {
	for _, sz := range sizes {
		o := deviceState(sz.bytes, 0)
		want, _ := json.Marshal(o)
		if got, err := jsonv2.Marshal(o, libMarshalOptions); err != nil || string(got) != string(want) {
			b.Fatalf("the library writes %s, %v; encoding/json %s", got, err, want)
		}
		b.Run(sz.name+"/encoding-json", func(b *testing.B) {
			b.SetBytes(int64(len(want)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := json.Marshal(o); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(sz.name+"/jsonv2", func(b *testing.B) {
			b.SetBytes(int64(len(want)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := jsonv2.Marshal(o, libMarshalOptions); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEncodeInterleaved is BenchmarkEncode with both encoders in turn in every
// iteration, reporting each one's time and the library's ratio to encoding/json's.
func BenchmarkEncodeInterleaved(b *testing.B) {
	for _, sz := range sizes {
		o := deviceState(sz.bytes, 0)
		b.Run(sz.name, func(b *testing.B) {
			var std, lib time.Duration
			n := 0
			for b.Loop() {
				start := time.Now()
				if _, err := json.Marshal(o); err != nil {
					b.Fatal(err)
				}
				mid := time.Now()
				if _, err := jsonv2.Marshal(o, libMarshalOptions); err != nil {
					b.Fatal(err)
				}
				std, lib = std+mid.Sub(start), lib+time.Since(mid)
				n++
			}
			b.ReportMetric(float64(std.Nanoseconds())/float64(n), "encoding-json-ns/op")
			b.ReportMetric(float64(lib.Nanoseconds())/float64(n), "jsonv2-ns/op")
			b.ReportMetric(float64(lib)/float64(std), "jsonv2/encoding-json")
		})
	}
}

// The payloads are what the benchmark says: about 200 B, 1 KB and 8 KB of state, and
// every implementation decodes them to the same values.
func TestPayloads(t *testing.T) {
	for _, sz := range sizes {
		m := shadowMessages(t, sz.bytes)
		t.Logf("%s: documents %d B, delta %d B, accepted %d B, state %d B", sz.name, len(m.documents), len(m.delta), len(m.accepted), len(m.state))
		for _, p := range [][]byte{m.documents, m.delta, m.accepted, m.state} {
			agree(t, p)
		}
	}
}

// edgeCases are the inputs where a decoder can most easily differ from encoding/json.
var edgeCases = []struct{ name, text string }{
	{"duplicate key, last wins", `{"state":{"desired":{"a":1,"a":2}},"version":1}`},
	{"duplicate struct field, objects merge", `{"state":{"desired":{"a":1}},"state":{"reported":{"b":2}},"version":1}`},
	{"deep nesting (10,000 levels)", `{"state":{"desired":` + strings.Repeat(`{"a":`, 9990) + `1` + strings.Repeat(`}`, 9990) + `}}`},
	{"nesting beyond encoding/json's limit", `{"state":{"desired":` + strings.Repeat(`[`, 10001) + strings.Repeat(`]`, 10001) + `}}`},
	{"big integer, kept exact", `{"state":{"desired":{"n":123456789012345678901234567890}},"version":18446744073709551615}`},
	{"number forms", `{"state":{"desired":{"a":-0,"b":1.50,"c":1E+2,"d":0.000001}},"version":3}`},
	{"invalid UTF-8 in a value", "{\"state\":{\"desired\":{\"name\":\"caf\xe9\"}},\"version\":1}"},
	{"invalid UTF-8 in a key", "{\"state\":{\"desired\":{\"caf\xe9\":1}},\"version\":1}"},
	{"escapes", `{"state":{"desired":{"a\"b":"\u00e9\n\ud83d\ude00"}},"version":1}`},
	{"field name in other case", `{"State":{"Desired":{"a":1}},"VERSION":2}`},
	{"field name with a dash", `{"client-token":"x","version":1}`},
	{"wrong type", `{"state":[1,2],"version":1}`},
	{"version not an integer", `{"version":1.5}`},
	{"trailing data", `{"version":1} {}`},
	{"truncated", `{"state":{"desired":{"a":1}`},
	{"bad literal", `{"state":{"desired":{"a":tru}}}`},
	{"control character in a string", "{\"clientToken\":\"a\x01\"}"},
}

// TestEdgeCases decodes each edge case into a delta message with each implementation
// and reports whether it agrees with encoding/json (value, or failure) and the error
// a user would see. It fails only for shadowstate's own decoder, whose contract is
// to agree.
func TestEdgeCases(t *testing.T) {
	for _, c := range edgeCases {
		var want shadowstate.DeltaMessage
		wantErr := stdUnmarshal([]byte(c.text), &want)
		for _, d := range decoders[:2] {
			var got shadowstate.DeltaMessage
			err := d.unmarshal([]byte(c.text), &got)
			same := (err == nil) == (wantErr == nil) && (err != nil || reflect.DeepEqual(got, want))
			if err != nil && wantErr != nil {
				same = err.Error() == wantErr.Error()
			}
			t.Logf("%-40s %-8s agrees with encoding/json: %-5v error: %v", c.name, d.name, same, err)
			if d.name == "fastjson" && !same {
				t.Errorf("%s: fastjson %+v, %v; encoding/json %+v, %v", c.name, got, err, want, wantErr)
			}
		}
		// The library alone, without the fallback: what it decides by itself.
		var lib shadowstate.DeltaMessage
		err := jsonv2.Unmarshal([]byte(c.text), &lib, libOptions)
		t.Logf("%-40s %-8s alone: %v", "", "jsonv2", err)
	}
}

// agree fails unless every implementation of every operation decodes data as
// encoding/json does.
func agree(t *testing.T, data []byte) {
	t.Helper()
	targets := func() []any {
		return []any{new(shadowstate.Object), new(any), new(shadowstate.DocumentsMessage), new(shadowstate.DeltaMessage), new(shadowstate.UpdateAccepted), new(shadowstate.Document)}
	}
	want := targets()
	var wantErr []error
	for _, v := range want {
		wantErr = append(wantErr, stdUnmarshal(data, v))
	}
	wantToken, wantTokenErr := stdReplyToken(data)
	var wantDocs shadowstate.DocumentsMessage
	wantDocsErr := stdDocumentsStateOnly(data, &wantDocs)
	for _, d := range decoders[:2] {
		got := targets()
		for i, v := range got {
			err := d.unmarshal(data, v)
			if (err == nil) != (wantErr[i] == nil) || err == nil && !reflect.DeepEqual(v, want[i]) {
				t.Fatalf("%s: %T from %.200q: %v, %v; encoding/json %v, %v", d.name, v, data, v, err, want[i], wantErr[i])
			}
		}
		token, err := d.token(data)
		if (err == nil) != (wantTokenErr == nil) || token != wantToken {
			t.Fatalf("%s: token of %.200q: %q, %v; encoding/json %q, %v", d.name, data, token, err, wantToken, wantTokenErr)
		}
		var docs shadowstate.DocumentsMessage
		err = d.stateOnly(data, &docs)
		if (err == nil) != (wantDocsErr == nil) || err == nil && !reflect.DeepEqual(docs, wantDocs) {
			t.Fatalf("%s: state-only documents from %.200q: %+v, %v; encoding/json %+v, %v", d.name, data, docs, err, wantDocs, wantDocsErr)
		}
	}
}

// FuzzAgree checks both decoders against encoding/json on any input, as shadowstate's
// own fuzz targets check fastjson: the library's path must keep the same contract.
func FuzzAgree(f *testing.F) {
	for _, c := range edgeCases {
		f.Add([]byte(c.text))
	}
	for _, sz := range sizes[:2] {
		m := shadowMessages(f, sz.bytes)
		f.Add(m.documents)
		f.Add(m.delta)
		f.Add(m.accepted)
	}
	f.Fuzz(func(t *testing.T, data []byte) { agree(t, data) })
}
