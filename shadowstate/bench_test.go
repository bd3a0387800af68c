package shadowstate

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// realisticState builds the state of a device with sensors, settings and schedules:
// nested objects, arrays of numbers and of objects, strings and booleans, grown until
// its compact JSON is about size bytes.
func realisticState(size int, variant int) Object {
	s := Object{}
	for i := 0; jsonSize(s) < size; i++ {
		s[fmt.Sprintf("zone%02d", i)] = Object{
			"name":    fmt.Sprintf("Zone %d, north wing", i),
			"enabled": i%2 == 0,
			"setpoint": Object{
				"heat": json.Number(fmt.Sprint(18 + i%4)),
				"cool": json.Number(fmt.Sprint(24 + (i+variant)%3)),
				"mode": "auto",
			},
			"fan": Object{"speed": json.Number(fmt.Sprint(i % 5)), "profile": []any{json.Number("10"), json.Number("40"), json.Number("80")}},
			"schedule": []any{
				Object{"at": "06:30", "heat": json.Number("20")},
				Object{"at": "22:00", "heat": json.Number(fmt.Sprint(16 + variant%2))},
			},
			"sensors": Object{"ids": []any{fmt.Sprintf("s-%d-a", i), fmt.Sprintf("s-%d-b", i)}, "calibrated": true},
		}
	}
	return s
}

func BenchmarkDelta8KB(b *testing.B) {
	desired := realisticState(8000, 0)
	reported := realisticState(8000, 1) // a few leaves in each zone differ
	if d := Delta(desired, reported); d == nil {
		b.Fatal("no difference to compute")
	}
	b.SetBytes(int64(jsonSize(desired)))
	b.ReportAllocs()
	for b.Loop() {
		Delta(desired, reported)
	}
}

func BenchmarkDelta8KBInSync(b *testing.B) {
	desired := realisticState(8000, 0)
	reported := realisticState(8000, 0)
	b.ReportAllocs()
	for b.Loop() {
		if Delta(desired, reported) != nil {
			b.Fatal("states differ")
		}
	}
}

// applyBench runs an update request against a shadow holding an 8 KB document.
func applyBench(b *testing.B, req []byte) {
	cur := Shadow{ID: ID{Thing: "bench"}}
	doc := mustJSONB(b, UpdateRequest{State: &StateUpdate{
		Desired:  json.RawMessage(mustJSONB(b, realisticState(3500, 0))),
		Reported: json.RawMessage(mustJSONB(b, realisticState(3500, 1))),
	}})
	out := Apply(cur, OpUpdate, doc, time.Unix(t0, 0))
	if out.Rejected != nil {
		b.Fatal(out.Rejected)
	}
	cur = out.Shadow
	if got := stateSize(cur.Desired) + stateSize(cur.Reported); got < 7000 || got > MaxStateBytes {
		b.Fatalf("document is %d bytes, want about 8 KB", got)
	}
	now := time.Unix(t0+1, 0)
	b.SetBytes(int64(len(req)))
	b.ReportAllocs()
	for b.Loop() {
		if out := Apply(cur, OpUpdate, req, now); out.Rejected != nil {
			b.Fatal(out.Rejected)
		}
	}
}

func BenchmarkApply8KBSmallUpdate(b *testing.B) {
	applyBench(b, []byte(`{"state":{"reported":{"zone03":{"setpoint":{"cool":25},"fan":{"speed":2}}}},"clientToken":"c-1"}`))
}

func BenchmarkApply8KBFullReport(b *testing.B) {
	applyBench(b, mustJSONB(b, UpdateRequest{State: &StateUpdate{Reported: json.RawMessage(mustJSONB(b, realisticState(3500, 0)))}}))
}

func BenchmarkApply8KBGet(b *testing.B) {
	cur := Apply(Shadow{ID: ID{Thing: "bench"}}, OpUpdate, mustJSONB(b, UpdateRequest{State: &StateUpdate{
		Desired:  json.RawMessage(mustJSONB(b, realisticState(3500, 0))),
		Reported: json.RawMessage(mustJSONB(b, realisticState(3500, 1))),
	}}), time.Unix(t0, 0)).Shadow
	req := []byte(`{"clientToken":"g-1"}`)
	b.ReportAllocs()
	for b.Loop() {
		out := Apply(cur, OpGet, req, time.Unix(t0, 0))
		if _, err := json.Marshal(out.Accepted); err != nil {
			b.Fatal(err)
		}
	}
}

func mustJSONB(b *testing.B, v any) []byte {
	b.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		b.Fatal(err)
	}
	return data
}
