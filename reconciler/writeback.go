package reconciler

import (
	"encoding"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"sync"

	"github.com/shadowsync/shadowsync/shadowstate"
)

// reportPatch returns what to write to reported state so that it holds the device
// state v: every member of v's JSON form (stateJSON) that stored (the reported object
// the shadow holds) lacks or holds differently, recursing into objects. It never
// deletes: keys of stored that v does not have are left as they are, and so are
// fields v holds as nil. It is nil when nothing differs.
func reportPatch[T any](stored shadowstate.Object, v *T) (shadowstate.Object, error) {
	state, err := stateJSON(v)
	if err != nil {
		return nil, err
	}
	return patchOf(stored, state), nil
}

// stateJSON returns the device state v as a JSON object (see toJSON): zero values
// included, whatever omitempty says, since a key absent from reported is not the same
// as a zero one. A device state must encode as an object (or nothing).
func stateJSON[T any](v *T) (shadowstate.Object, error) {
	j, err := toJSON(reflect.ValueOf(v).Elem())
	if err != nil {
		return nil, err
	}
	switch j := j.(type) {
	case nil:
		return nil, nil
	case shadowstate.Object:
		return j, nil
	}
	return nil, fmt.Errorf("the device state encodes as %T, not a JSON object", j)
}

// copyObject deep-copies o (values that are not JSON's own types become their JSON
// form), so that the copy shares nothing a Reconcile may change.
func copyObject(o shadowstate.Object) (shadowstate.Object, error) {
	j, err := mapJSON(reflect.ValueOf(o))
	obj, _ := j.(shadowstate.Object)
	return obj, err
}

// patchOf returns the members of want that stored lacks or holds differently, with
// objects compared key by key; nil when there are none.
func patchOf(stored, want shadowstate.Object) shadowstate.Object {
	var patch shadowstate.Object
	for k, w := range want {
		s, ok := stored[k]
		if ok {
			if wo, isObj := w.(shadowstate.Object); isObj {
				if so, isObj := s.(shadowstate.Object); isObj {
					if sub := patchOf(so, wo); sub != nil {
						patch = setKey(patch, k, sub)
					}
					continue
				}
			}
			if shadowstate.Equal(w, s) {
				continue
			}
		}
		if wo, isObj := w.(shadowstate.Object); isObj && len(wo) == 0 {
			continue // an empty object adds nothing to a shadow
		}
		patch = setKey(patch, k, w)
	}
	return patch
}

func setKey(o shadowstate.Object, k string, v any) shadowstate.Object {
	if o == nil {
		o = shadowstate.Object{}
	}
	o[k] = v
	return o
}

// withDeletes adds a null to patch for each path that exists in stored: the reported
// keys a Reconcile asked to delete. A deletion wins over a value for the same key.
func withDeletes(patch, stored shadowstate.Object, paths [][]string) shadowstate.Object {
	for _, p := range paths {
		if len(p) == 0 || !hasPath(stored, p) {
			continue
		}
		if patch == nil {
			patch = shadowstate.Object{}
		}
		o := patch
		for _, k := range p[:len(p)-1] {
			sub, ok := o[k].(shadowstate.Object)
			if !ok {
				sub = shadowstate.Object{}
				o[k] = sub
			}
			o = sub
		}
		o[p[len(p)-1]] = nil
	}
	return patch
}

func hasPath(o shadowstate.Object, p []string) bool {
	for i, k := range p {
		v, ok := o[k]
		if !ok {
			return false
		}
		if i == len(p)-1 {
			return true
		}
		if o, ok = v.(shadowstate.Object); !ok {
			return false
		}
	}
	return false
}

var (
	marshalerType     = reflect.TypeFor[json.Marshaler]()
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
	numberType        = reflect.TypeFor[json.Number]()
	objectType        = reflect.TypeFor[shadowstate.Object]()
)

// marshalers says whether a type's values (value) and pointers to them (pointer)
// encode themselves, with MarshalJSON or MarshalText.
type marshalers struct{ value, pointer bool }

var marshalersCache sync.Map // reflect.Type → marshalers

// marshalersOf answers, once per type, the question toJSON asks of every value of
// every report: reflect's Implements and PointerTo are too slow to ask it each time.
func marshalersOf(t reflect.Type) marshalers {
	if m, ok := marshalersCache.Load(t); ok {
		return m.(marshalers)
	}
	pt := reflect.PointerTo(t)
	m := marshalers{
		value:   t.Implements(marshalerType) || t.Implements(textMarshalerType),
		pointer: pt.Implements(marshalerType) || pt.Implements(textMarshalerType),
	}
	marshalersCache.Store(t, m)
	return m
}

// errUnsupported reports a Go value with no JSON form.
var errUnsupported = errors.New("no JSON form")

// toJSON returns v's JSON form in shadowstate's value types (nil, bool, string,
// json.Number, []any, Object), as encoding/json would encode it except that
// omitempty is ignored — zero values are part of a device's state — and that struct
// fields and map entries holding nil (a nil pointer, slice, map or interface) are left
// out, since a shadow stores no nulls. Types with their own MarshalJSON or MarshalText
// are encoded by them.
func toJSON(v reflect.Value) (any, error) {
	if !v.IsValid() {
		return nil, nil
	}
	t := v.Type()
	if t.Kind() != reflect.Pointer && t.Kind() != reflect.Interface && v.CanInterface() {
		m := marshalersOf(t)
		if m.value {
			return viaEncodingJSON(v.Interface())
		}
		if m.pointer && v.CanAddr() {
			return viaEncodingJSON(v.Addr().Interface())
		}
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return nil, nil
		}
		if v.CanInterface() && marshalersOf(t).value {
			return viaEncodingJSON(v.Interface())
		}
		return toJSON(v.Elem())
	case reflect.Interface:
		if v.IsNil() {
			return nil, nil
		}
		return toJSON(v.Elem())
	case reflect.Bool:
		return v.Bool(), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return json.Number(strconv.FormatInt(v.Int(), 10)), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return json.Number(strconv.FormatUint(v.Uint(), 10)), nil
	case reflect.Float32, reflect.Float64:
		f := v.Float()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("%w: %v", errUnsupported, f)
		}
		return json.Number(strconv.FormatFloat(f, 'g', -1, t.Bits())), nil
	case reflect.String:
		if t == numberType {
			n := json.Number(v.String())
			if _, err := n.Float64(); err != nil {
				return nil, fmt.Errorf("invalid number %q", n)
			}
			return n, nil
		}
		return v.String(), nil
	case reflect.Struct:
		return structJSON(v)
	case reflect.Map:
		return mapJSON(v)
	case reflect.Slice:
		if v.IsNil() {
			return nil, nil
		}
		if t.Elem().Kind() == reflect.Uint8 && !reflect.PointerTo(t.Elem()).Implements(marshalerType) {
			return base64.StdEncoding.EncodeToString(v.Bytes()), nil
		}
		fallthrough
	case reflect.Array:
		out := make([]any, v.Len())
		for i := range out {
			e, err := toJSON(v.Index(i))
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			out[i] = e
		}
		return out, nil
	}
	return nil, fmt.Errorf("%w: %s", errUnsupported, t)
}

func structJSON(v reflect.Value) (any, error) {
	fields := jsonFields(v.Type())
	out := make(shadowstate.Object, len(fields))
	for _, f := range fields {
		fv, ok := fieldByIndex(v, f.index)
		if !ok {
			continue // inside a nil embedded pointer
		}
		j, err := toJSON(fv)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.name, err)
		}
		if j == nil {
			continue
		}
		if f.asString {
			switch s := j.(type) {
			case string:
				q, _ := json.Marshal(s)
				j = string(q)
			case bool:
				j = strconv.FormatBool(s)
			case json.Number:
				j = string(s)
			}
		}
		out[f.name] = j
	}
	return out, nil
}

func mapJSON(v reflect.Value) (any, error) {
	if v.IsNil() {
		return nil, nil
	}
	if v.Type() == objectType {
		// The common untyped case, without reflection per entry where values are
		// JSON's own types.
		o := v.Interface().(shadowstate.Object)
		out := make(shadowstate.Object, len(o))
		for k, e := range o {
			j, err := plainJSON(e)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			if j != nil {
				out[k] = j
			}
		}
		return out, nil
	}
	out := make(shadowstate.Object, v.Len())
	it := v.MapRange()
	for it.Next() {
		k, err := mapKey(it.Key())
		if err != nil {
			return nil, err
		}
		j, err := toJSON(it.Value())
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		if j != nil {
			out[k] = j
		}
	}
	return out, nil
}

// plainJSON is toJSON for a value of an untyped object.
func plainJSON(e any) (any, error) {
	switch e := e.(type) {
	case nil, bool, string, json.Number:
		return e, nil
	case shadowstate.Object:
		return mapJSON(reflect.ValueOf(e))
	case []any:
		out := make([]any, len(e))
		for i, x := range e {
			j, err := plainJSON(x)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			out[i] = j
		}
		return out, nil
	}
	return toJSON(reflect.ValueOf(e))
}

// mapKey is a map key's JSON object key, as encoding/json writes it.
func mapKey(k reflect.Value) (string, error) {
	if k.Kind() == reflect.String {
		return k.String(), nil
	}
	if k.CanInterface() {
		if tm, ok := k.Interface().(encoding.TextMarshaler); ok {
			b, err := tm.MarshalText()
			return string(b), err
		}
	}
	switch k.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(k.Int(), 10), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return strconv.FormatUint(k.Uint(), 10), nil
	}
	return "", fmt.Errorf("%w: map key type %s", errUnsupported, k.Type())
}

// fieldByIndex is reflect.Value.FieldByIndex that reports false instead of panicking
// at a nil embedded pointer.
func fieldByIndex(v reflect.Value, index []int) (reflect.Value, bool) {
	for i, x := range index {
		if i > 0 && v.Kind() == reflect.Pointer {
			if v.IsNil() {
				return reflect.Value{}, false
			}
			v = v.Elem()
		}
		v = v.Field(x)
	}
	return v, true
}

// viaEncodingJSON encodes a value with its own marshaller.
func viaEncodingJSON(v any) (any, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out any
	if err := shadowstate.Unmarshal(data, &out); err != nil {
		return nil, err
	}
	return out, nil
}
