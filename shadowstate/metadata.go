package shadowstate

import (
	"encoding/json"
	"strconv"
)

// Stamp is one leaf of a metadata tree: the time, in Unix seconds, at which the state
// value beside it was last written. It encodes as {"timestamp": N}, as AWS sends it.
type Stamp int64

// MarshalJSON encodes s as AWS's metadata leaf {"timestamp": N}.
func (s Stamp) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 24)
	b = append(b, `{"timestamp":`...)
	b = strconv.AppendInt(b, int64(s), 10)
	return append(b, '}'), nil
}

// stampTree returns the metadata for a freshly written value: a Stamp for a scalar or
// null, an object of stamps for an object, and an array with one entry per element for
// an array (objects inside arrays recurse).
func stampTree(v any, ts int64) any {
	switch v := v.(type) {
	case Object:
		m := make(Object, len(v))
		for k, e := range v {
			m[k] = stampTree(e, ts)
		}
		return m
	case []any:
		m := make([]any, len(v))
		for i, e := range v {
			m[i] = stampTree(e, ts)
		}
		return m
	}
	return Stamp(ts)
}

// projectMeta returns the part of meta that lies under the keys of delta: the stored
// timestamps of exactly the values a delta message carries.
func projectMeta(delta, meta Object) Object {
	out := make(Object, len(delta))
	for k, dv := range delta {
		mv, ok := meta[k]
		if !ok {
			continue
		}
		if dobj, ok := dv.(Object); ok {
			if mobj, ok := mv.(Object); ok {
				out[k] = projectMeta(dobj, mobj)
				continue
			}
		}
		out[k] = mv
	}
	return out
}

// parseMeta turns a metadata tree decoded from JSON back into the form this package
// builds: every {"timestamp": N} object becomes a Stamp. A metadata leaf is the only
// object whose single member is "timestamp" holding a number: the metadata of a state
// key named "timestamp" holds an object, not a number, so the two never mix.
func parseMeta(v any) any {
	switch v := v.(type) {
	case Object:
		if len(v) == 1 {
			if n, ok := v["timestamp"].(json.Number); ok {
				if ts, err := n.Int64(); err == nil {
					return Stamp(ts)
				}
			}
		}
		out := make(Object, len(v))
		for k, e := range v {
			out[k] = parseMeta(e)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = parseMeta(e)
		}
		return out
	}
	return v
}
