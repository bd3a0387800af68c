package reconciler

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"

	"github.com/shadowsync/shadowsync/shadowstate"
	"github.com/shadowsync/shadowsync/transport"
)

// benchThermostat is a typed device of the size most devices have.
type benchThermostat struct {
	Target   float64         `json:"target" jsonschema:"minimum=5,maximum=30"`
	Mode     string          `json:"mode" jsonschema:"enum=heat,enum=cool,enum=auto,enum=off"`
	Fan      int             `json:"fan"`
	Schedule []benchSlot     `json:"schedule,omitempty"`
	Sensors  map[string]bool `json:"sensors,omitempty"`
	Firmware string          `json:"firmware,omitempty"`
}

type benchSlot struct {
	At     string  `json:"at"`
	Target float64 `json:"target"`
}

// benchController returns a controller of T that is never started: its report
// computes the patch and, if there is one, fails at once with ErrOffline.
func benchController[T any](b *testing.B) (*Controller[T], shadowstate.ID, *entry) {
	b.Helper()
	m, err := NewManager(transport.Config{Endpoint: "mqtt://127.0.0.1:1"}, Options{})
	if err != nil {
		b.Fatal(err)
	}
	c, err := Register(m, ControllerOptions{Things: []string{"bench-1"}},
		ReconcilerFunc[T](func(context.Context, Request[T]) (Result, error) { return Result{}, nil }))
	if err != nil {
		b.Fatal(err)
	}
	id := shadowstate.ID{Thing: "bench-1"}
	return c, id, c.set.get(id)
}

// object decodes JSON text the way the shadow client does.
func object(b *testing.B, text string) shadowstate.Object {
	b.Helper()
	var o shadowstate.Object
	if err := shadowstate.Unmarshal([]byte(text), &o); err != nil {
		b.Fatal(err)
	}
	return o
}

// zones returns a device state of about size bytes of JSON, and the same state with
// one leaf per zone changed.
func zones(b *testing.B, size int) (shadowstate.Object, shadowstate.Object) {
	b.Helper()
	var desired, reported []string
	for i := 0; ; i++ {
		z := `"zone%02d":{"name":"Zone %d, north wing","enabled":true,"setpoint":{"heat":%d,"cool":24,"mode":"auto"},"fan":{"speed":%d,"profile":[10,40,80]},"schedule":[{"at":"06:30","heat":20},{"at":"22:00","heat":16}]}`
		desired = append(desired, fmt.Sprintf(z, i, i, 18+i%4, i%5))
		reported = append(reported, fmt.Sprintf(z, i, i, 18+i%4, (i+1)%5))
		if n := len(desired) * len(desired[0]); n >= size {
			break
		}
	}
	join := func(parts []string) string {
		s := "{"
		for i, p := range parts {
			if i > 0 {
				s += ","
			}
			s += p
		}
		return s + "}"
	}
	return object(b, join(desired)), object(b, join(reported))
}

// BenchmarkWriteBack measures what a reconcile costs the framework around the
// user's Reconcile, without the network: validate desired state and decode it merged
// onto reported state into T, decode reported state into T, let Reconcile change it,
// compute what to write against the stored reported state (reportPatch) and encode it
// for the update request. These are the steps of process, report and write up to the
// publish; report itself cannot run them all here, since it publishes. The
// report-unchanged cases run the real report on state Reconcile did not change (it
// computes the patch, finds it empty and writes nothing). patch is reportPatch alone,
// and createmergepatch a patch by jsonpatch.CreateMergePatch between the encoded
// states, an off-the-shelf way to compute it: the baseline for patch.
func BenchmarkWriteBack(b *testing.B) {
	small := func() (shadowstate.Object, shadowstate.Object) {
		return object(b, `{"seq":2,"setpoint":21,"mode":"heat"}`), object(b, `{"seq":1,"setpoint":20,"mode":"heat"}`)
	}
	b.Run("echo-small", func(b *testing.B) { benchWriteBack(b, echoReconcile, small) })
	b.Run("echo-8KB", func(b *testing.B) {
		benchWriteBack(b, echoReconcile, func() (shadowstate.Object, shadowstate.Object) { return zones(b, 8000) })
	})
	b.Run("struct", func(b *testing.B) {
		benchWriteBack(b, func(req Request[benchThermostat]) { req.Reported.Target = req.Desired.Target }, func() (shadowstate.Object, shadowstate.Object) {
			state := `{"target":%d,"mode":"heat","fan":2,"schedule":[{"at":"06:30","target":20},{"at":"22:00","target":16}],"sensors":{"s1":true,"s2":false},"firmware":"2.1.0"}`
			return object(b, fmt.Sprintf(state, 22)), object(b, fmt.Sprintf(state, 21))
		})
	})
}

func echoReconcile(req Request[shadowstate.Object]) {
	*req.Reported = shadowstate.Merge(*req.Reported, req.Delta)
}

func benchWriteBack[T any](b *testing.B, reconcile func(Request[T]), states func() (desired, reported shadowstate.Object)) {
	c, id, e := benchController[T](b)
	desired, reported := states()
	ctx := context.Background()

	b.Run("process", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			desiredT, err := c.decodeDesired(desired, reported)
			if err != nil {
				b.Fatal(err)
			}
			var reportedT T
			if err := decodeInto(reported, &reportedT); err != nil {
				b.Fatal(err)
			}
			reconcile(Request[T]{Desired: desiredT, Reported: &reportedT, Delta: shadowstate.Delta(desired, reported)})
			patch, err := reportPatch(reported, &reportedT)
			if err != nil {
				b.Fatal(err)
			}
			if len(patch) == 0 {
				b.Fatal("Reconcile changed nothing")
			}
			if _, err := json.Marshal(patch); err != nil {
				b.Fatal(err)
			}
		}
	})
	changed := func() (after *T, beforeJSON, afterJSON []byte) {
		var reportedT T
		_ = decodeInto(reported, &reportedT)
		beforeJSON, _ = json.Marshal(&reportedT)
		desiredT, _ := c.decodeDesired(desired, reported)
		reconcile(Request[T]{Desired: desiredT, Reported: &reportedT, Delta: shadowstate.Delta(desired, reported)})
		afterJSON, _ = json.Marshal(&reportedT)
		return &reportedT, beforeJSON, afterJSON
	}
	b.Run("patch", func(b *testing.B) {
		after, _, afterJSON := changed()
		b.SetBytes(int64(len(afterJSON)))
		b.ReportAllocs()
		for b.Loop() {
			if p, err := reportPatch(reported, after); err != nil || len(p) == 0 {
				b.Fatal("no patch", err)
			}
		}
	})
	b.Run("createmergepatch", func(b *testing.B) {
		_, before, after := changed()
		b.SetBytes(int64(len(after)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := jsonpatch.CreateMergePatch(before, after); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("report-unchanged", func(b *testing.B) {
		var reportedT T
		_ = decodeInto(reported, &reportedT)
		b.ReportAllocs()
		for b.Loop() {
			if err := c.report(ctx, id, e, reported, &reportedT, nil, nil, 1, true); err != nil {
				b.Fatal(err)
			}
		}
	})
}
