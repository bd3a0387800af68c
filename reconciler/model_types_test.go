package reconciler_test

import (
	"context"
	"encoding/json"
	"sync"

	"github.com/shadowsync/shadowsync/reconciler"
	"github.com/shadowsync/shadowsync/shadowstate"
)

// The device types of the model test: the shapes users write.

type flatDev struct {
	On    bool    `json:"on"`
	Speed int     `json:"speed" jsonschema:"minimum=0,maximum=10"`
	Ratio float64 `json:"ratio"`
	Name  string  `json:"name"`
}

type omitDev struct {
	On    bool    `json:"on,omitempty"`
	Speed int     `json:"speed,omitempty" jsonschema:"minimum=0,maximum=10"`
	Ratio float64 `json:"ratio,omitempty"`
	Name  string  `json:"name,omitempty"`
}

type ptrDev struct {
	On    *bool   `json:"on,omitempty"`
	Level *int    `json:"level,omitempty" jsonschema:"minimum=0,maximum=100"`
	Mode  *string `json:"mode,omitempty" jsonschema:"enum=off,enum=eco,enum=on"`
}

type nestedDev struct {
	Mode string `json:"mode" jsonschema:"enum=off,enum=eco,enum=on"`
	Cfg  struct {
		Fade  int    `json:"fade,omitempty" jsonschema:"minimum=0,maximum=10"`
		Curve string `json:"curve"`
	} `json:"cfg"`
}

type sliceDev struct {
	Tags  []string `json:"tags"`
	Steps []int    `json:"steps,omitempty"`
}

type zone struct {
	On    bool `json:"on"`
	Level int  `json:"level,omitempty" jsonschema:"minimum=0,maximum=100"`
}

type mapDev struct {
	Zones map[string]zone `json:"zones"`
}

type devBase struct {
	Power bool `json:"power"`
}

type DevExtra struct {
	Note string `json:"note"`
}

type embeddedDev struct {
	devBase
	*DevExtra
	Level int `json:"level" jsonschema:"minimum=0,maximum=100"`
}

// leafSpec is one place in a device's state an app can desire: its path ("*" stands
// for any of the type's map keys), values the schema accepts and values it refuses.
type leafSpec struct {
	path    []string
	valid   []any
	invalid []any
}

type deviceType struct {
	name   string
	leaves []leafSpec
	keys   []string // the map keys "*" stands for
	// initial is the state the device reports when it starts (JSON form).
	initial string
	// register adds the type's controller to m.
	register func(m *reconciler.Manager, opts reconciler.ControllerOptions) (modelDevice, error)
}

// modelDevice is a perfect device of some type: its hardware takes whatever Desired
// says and reports it.
type modelDevice interface {
	// report changes the hardware by itself and reports it: path set to v.
	report(ctx context.Context, thing string, path []string, v any) error
	// start sets the hardware to the JSON state and reports it.
	start(ctx context.Context, thing string, state shadowstate.Object) error
	// hardware is the thing's hardware in normal form.
	hardware(thing string) shadowstate.Object
	// normal is a reported state in normal form: decoded into the type and encoded
	// again, so that it compares with hardware.
	normal(o shadowstate.Object) shadowstate.Object
}

func jn(s string) json.Number { return json.Number(s) }

var deviceTypes = []deviceType{
	{
		name: "flat", initial: `{"on":true,"speed":3,"ratio":1.5,"name":"hall"}`,
		leaves: []leafSpec{
			{[]string{"on"}, []any{true, false}, nil},
			{[]string{"speed"}, []any{jn("0"), jn("1"), jn("5"), jn("10")}, []any{jn("11"), jn("-3"), "fast"}},
			{[]string{"ratio"}, []any{jn("0"), jn("0.5"), jn("2.25")}, []any{"x"}},
			{[]string{"name"}, []any{"", "a", "kitchen"}, []any{jn("5")}},
		},
		register: typedDevice[flatDev],
	},
	{
		name: "omitempty", initial: `{"on":true,"speed":3,"ratio":1.5,"name":"hall"}`,
		leaves: []leafSpec{
			{[]string{"on"}, []any{true, false}, nil},
			{[]string{"speed"}, []any{jn("0"), jn("1"), jn("5"), jn("10")}, []any{jn("11"), jn("-3")}},
			{[]string{"ratio"}, []any{jn("0"), jn("0.5"), jn("2.25")}, []any{"x"}},
			{[]string{"name"}, []any{"", "a", "kitchen"}, []any{jn("5")}},
		},
		register: typedDevice[omitDev],
	},
	{
		name: "pointers", initial: `{"on":false,"level":20,"mode":"eco"}`,
		leaves: []leafSpec{
			{[]string{"on"}, []any{true, false}, []any{"yes"}},
			{[]string{"level"}, []any{jn("0"), jn("40"), jn("100")}, []any{jn("101")}},
			{[]string{"mode"}, []any{"off", "eco", "on"}, []any{"turbo"}},
		},
		register: typedDevice[ptrDev],
	},
	{
		name: "nested", initial: `{"mode":"on","cfg":{"fade":2,"curve":"lin"}}`,
		leaves: []leafSpec{
			{[]string{"mode"}, []any{"off", "eco", "on"}, []any{"turbo"}},
			{[]string{"cfg", "fade"}, []any{jn("0"), jn("3"), jn("10")}, []any{jn("11")}},
			{[]string{"cfg", "curve"}, []any{"", "lin", "log"}, []any{jn("1")}},
		},
		register: typedDevice[nestedDev],
	},
	{
		name: "slice", initial: `{"tags":["x"],"steps":[5]}`,
		leaves: []leafSpec{
			{[]string{"tags"}, []any{[]any{}, []any{"a"}, []any{"a", "b"}}, []any{[]any{jn("1")}}},
			{[]string{"steps"}, []any{[]any{}, []any{jn("0")}, []any{jn("1"), jn("2")}}, []any{[]any{"x"}}},
		},
		register: typedDevice[sliceDev],
	},
	{
		name: "map", initial: `{"zones":{"a":{"on":true,"level":30}}}`, keys: []string{"a", "b", "c"},
		leaves: []leafSpec{
			{[]string{"zones", "*", "on"}, []any{true, false}, nil},
			{[]string{"zones", "*", "level"}, []any{jn("0"), jn("50"), jn("100")}, []any{jn("101")}},
		},
		register: typedDevice[mapDev],
	},
	{
		name: "embedded", initial: `{"power":true,"note":"n","level":9}`,
		leaves: []leafSpec{
			{[]string{"power"}, []any{true, false}, []any{"on"}},
			{[]string{"note"}, []any{"", "hi"}, []any{false}},
			{[]string{"level"}, []any{jn("0"), jn("7"), jn("100")}, []any{jn("101")}},
		},
		register: typedDevice[embeddedDev],
	},
	{
		name: "object", initial: `{"a":1,"b":"s","c":{"x":true,"y":0}}`,
		leaves: []leafSpec{
			{[]string{"a"}, []any{jn("0"), jn("1"), jn("2.5")}, nil},
			{[]string{"b"}, []any{"", "x"}, nil},
			{[]string{"c", "x"}, []any{true, false}, nil},
			{[]string{"c", "y"}, []any{jn("0"), []any{jn("1"), jn("2")}}, nil},
		},
		register: typedDevice[shadowstate.Object],
	},
}

// typedDeviceOf is a perfect device of type T.
type typedDeviceOf[T any] struct {
	ctrl *reconciler.Controller[T]
	mu   sync.Mutex
	hw   map[string]T
}

func typedDevice[T any](m *reconciler.Manager, opts reconciler.ControllerOptions) (modelDevice, error) {
	d := &typedDeviceOf[T]{hw: map[string]T{}}
	c, err := reconciler.Register(m, opts, reconciler.ReconcilerFunc[T](func(_ context.Context, req reconciler.Request[T]) (reconciler.Result, error) {
		// A device written the natural way: apply Desired whole, report what it is.
		d.mu.Lock()
		d.hw[req.Thing] = req.Desired
		d.mu.Unlock()
		*req.Reported = req.Desired
		return reconciler.Result{}, nil
	}))
	d.ctrl = c
	return d, err
}

func (d *typedDeviceOf[T]) set(thing string, o shadowstate.Object) T {
	var t T
	data, _ := json.Marshal(o)
	_ = shadowstate.Unmarshal(data, &t)
	d.mu.Lock()
	d.hw[thing] = t
	d.mu.Unlock()
	return t
}

func (d *typedDeviceOf[T]) start(ctx context.Context, thing string, state shadowstate.Object) error {
	return d.ctrl.Report(ctx, thing, func(t *T) { *t = d.set(thing, state) })
}

func (d *typedDeviceOf[T]) report(ctx context.Context, thing string, path []string, v any) error {
	return d.ctrl.Report(ctx, thing, func(t *T) {
		*t = d.set(thing, withPath(asObject(*t), path, v))
	})
}

func (d *typedDeviceOf[T]) hardware(thing string) shadowstate.Object {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.normal(asObject(d.hw[thing]))
}

func (d *typedDeviceOf[T]) normal(o shadowstate.Object) shadowstate.Object {
	var t T
	data, _ := json.Marshal(o)
	_ = shadowstate.Unmarshal(data, &t)
	out := asObject(t)
	if _, untyped := any(t).(shadowstate.Object); untyped {
		// The untyped device holds every key; compare those the model drives.
		delete(out, "status")
		delete(out, "x-other")
	}
	return out
}

func asObject(v any) shadowstate.Object {
	data, _ := json.Marshal(v)
	var o shadowstate.Object
	_ = shadowstate.Unmarshal(data, &o)
	return o
}

// withPath returns a copy of o with path set to v (nil deletes it).
func withPath(o shadowstate.Object, path []string, v any) shadowstate.Object {
	out := make(shadowstate.Object, len(o)+1)
	for k, x := range o {
		out[k] = x
	}
	if len(path) == 1 {
		if v == nil {
			delete(out, path[0])
		} else {
			out[path[0]] = v
		}
		return out
	}
	sub, _ := out[path[0]].(shadowstate.Object)
	out[path[0]] = withPath(sub, path[1:], v)
	return out
}
