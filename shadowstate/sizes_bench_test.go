package shadowstate

import (
	"encoding/json"
	"testing"
	"time"
)

// benchSizes are the document sizes the rules are measured on: a small device, the
// service's limit for a shadow's whole state, and a document beyond that limit (an
// app's large desired view), which only Delta and Merge ever see.
var benchSizes = []struct {
	name  string
	bytes int
}{{"1KB", 1000}, {"8KB", 8000}, {"30KB", 30000}}

// BenchmarkDelta computes the delta of two documents of each size: where a few
// leaves of every zone differ, and where they are equal (the common case of a
// shadow in sync, which must cost no allocation).
func BenchmarkDelta(b *testing.B) {
	for _, sz := range benchSizes {
		desired, reported, same := realisticState(sz.bytes, 0), realisticState(sz.bytes, 1), realisticState(sz.bytes, 0)
		b.Run(sz.name+"/differ", func(b *testing.B) {
			b.SetBytes(int64(jsonSize(desired)))
			b.ReportAllocs()
			for b.Loop() {
				if Delta(desired, reported) == nil {
					b.Fatal("no difference")
				}
			}
		})
		b.Run(sz.name+"/insync", func(b *testing.B) {
			b.SetBytes(int64(jsonSize(desired)))
			b.ReportAllocs()
			for b.Loop() {
				if Delta(desired, same) != nil {
					b.Fatal("states differ")
				}
			}
		})
	}
}

// BenchmarkMerge merges into a document of each size: the delta (what an echo
// reports back) and a whole document (a full report).
func BenchmarkMerge(b *testing.B) {
	for _, sz := range benchSizes {
		desired, reported := realisticState(sz.bytes, 0), realisticState(sz.bytes, 1)
		delta := Delta(desired, reported)
		b.Run(sz.name+"/delta", func(b *testing.B) {
			b.SetBytes(int64(jsonSize(delta)))
			b.ReportAllocs()
			for b.Loop() {
				Merge(reported, delta)
			}
		})
		b.Run(sz.name+"/whole", func(b *testing.B) {
			b.SetBytes(int64(jsonSize(desired)))
			b.ReportAllocs()
			for b.Loop() {
				Merge(reported, desired)
			}
		})
	}
}

// BenchmarkApplySizes runs update requests against stored shadows of 1 KB and 8 KB
// of state (half desired, half reported): a small update and a full report. A 30 KB
// document is over the service's limit, so for it the cost of the 413 rejection is
// measured.
func BenchmarkApplySizes(b *testing.B) {
	for _, sz := range benchSizes[:2] {
		cur := shadowOfSize(b, sz.bytes)
		small := []byte(`{"state":{"reported":{"zone00":{"setpoint":{"cool":25},"fan":{"speed":2}}}},"clientToken":"c-1"}`)
		full := mustJSONB(b, UpdateRequest{State: &StateUpdate{Reported: json.RawMessage(mustJSONB(b, realisticState(sz.bytes*7/16, 0)))}})
		for _, req := range []struct {
			name    string
			payload []byte
		}{{"small", small}, {"full", full}} {
			b.Run(sz.name+"/"+req.name, func(b *testing.B) {
				now := time.Unix(t0+1, 0)
				b.SetBytes(int64(len(req.payload)))
				b.ReportAllocs()
				for b.Loop() {
					if out := Apply(cur, OpUpdate, req.payload, now); out.Rejected != nil {
						b.Fatal(out.Rejected)
					}
				}
			})
		}
	}
	b.Run("30KB/rejected", func(b *testing.B) {
		req := mustJSONB(b, UpdateRequest{State: &StateUpdate{Desired: json.RawMessage(mustJSONB(b, realisticState(30000, 0)))}})
		cur := Shadow{ID: ID{Thing: "bench"}}
		now := time.Unix(t0, 0)
		b.SetBytes(int64(len(req)))
		b.ReportAllocs()
		for b.Loop() {
			if out := Apply(cur, OpUpdate, req, now); out.Rejected == nil || out.Rejected.Code != 413 {
				b.Fatal("30 KB of state accepted")
			}
		}
	})
}

// BenchmarkDecodeDocuments decodes an /update/documents message for shadows of 1 KB
// and 8 KB of state, as a shadow client does for every update of every shadow it
// watches.
func BenchmarkDecodeDocuments(b *testing.B) {
	for _, sz := range benchSizes[:2] {
		cur := shadowOfSize(b, sz.bytes)
		out := Apply(cur, OpUpdate, []byte(`{"state":{"desired":{"zone00":{"enabled":false}}}}`), time.Unix(t0+1, 0))
		if out.Documents == nil {
			b.Fatal(out.Rejected)
		}
		payload := mustJSONB(b, out.Documents)
		// Unmarshal (its fast path), the StateOnly decode the reconciler asks for, and
		// encoding/json, which Unmarshal used alone before: the baseline.
		for _, dec := range []struct {
			name string
			fn   func([]byte, *DocumentsMessage) error
		}{
			{"", func(p []byte, d *DocumentsMessage) error { return Unmarshal(p, d) }},
			{"/stateonly", UnmarshalDocumentsStateOnly},
			{"/encoding-json", func(p []byte, d *DocumentsMessage) error { return slowUnmarshal(p, d) }},
		} {
			b.Run(sz.name+dec.name, func(b *testing.B) {
				b.SetBytes(int64(len(payload)))
				b.ReportAllocs()
				for b.Loop() {
					var d DocumentsMessage
					if err := dec.fn(payload, &d); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// shadowOfSize returns a shadow holding a little under size bytes of state, half desired and
// half reported, with a few leaves differing.
func shadowOfSize(b *testing.B, size int) Shadow {
	b.Helper()
	req := mustJSONB(b, UpdateRequest{State: &StateUpdate{
		Desired:  json.RawMessage(mustJSONB(b, realisticState(size*7/16, 0))),
		Reported: json.RawMessage(mustJSONB(b, realisticState(size*7/16, 1))),
	}})
	out := Apply(Shadow{ID: ID{Thing: "bench"}}, OpUpdate, req, time.Unix(t0, 0))
	if out.Rejected != nil {
		b.Fatal(out.Rejected)
	}
	return out.Shadow
}

// BenchmarkDecodeMessages decodes the other messages a shadow client reads on every
// update of a shadow of 1 KB and 8 KB of state: the /update/delta message
// (Unmarshal), and the clientToken of an /update/accepted reply (ReplyToken, which
// the client runs on every reply the wildcard brings), each against encoding/json.
func BenchmarkDecodeMessages(b *testing.B) {
	for _, sz := range benchSizes[:2] {
		cur := shadowOfSize(b, sz.bytes)
		// A report of the delta's keys (the reply) and a new desired state (the delta).
		out := Apply(cur, OpUpdate, []byte(`{"state":{"reported":{"zone00":{"setpoint":{"cool":24}}}},"clientToken":"r-42"}`), time.Unix(t0+1, 0))
		if out.Rejected != nil {
			b.Fatal(out.Rejected)
		}
		accepted := mustJSONB(b, out.Accepted)
		out = Apply(out.Shadow, OpUpdate, mustJSONB(b, UpdateRequest{State: &StateUpdate{Desired: json.RawMessage(mustJSONB(b, realisticState(sz.bytes*7/16, 2)))}}), time.Unix(t0+2, 0))
		if out.Delta == nil {
			b.Fatal("no delta", out.Rejected)
		}
		delta := mustJSONB(b, out.Delta)
		for _, c := range []struct {
			name    string
			payload []byte
			fn      func([]byte) error
		}{
			{"/delta", delta, func(p []byte) error { var d DeltaMessage; return Unmarshal(p, &d) }},
			{"/delta/encoding-json", delta, func(p []byte) error { var d DeltaMessage; return slowUnmarshal(p, &d) }},
			{"/replytoken", accepted, func(p []byte) error { _, err := ReplyToken(p); return err }},
			{"/replytoken/encoding-json", accepted, func(p []byte) error {
				var t struct {
					ClientToken string `json:"clientToken"`
				}
				return slowUnmarshal(p, &t)
			}},
		} {
			b.Run(sz.name+c.name, func(b *testing.B) {
				b.SetBytes(int64(len(c.payload)))
				b.ReportAllocs()
				for b.Loop() {
					if err := c.fn(c.payload); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
