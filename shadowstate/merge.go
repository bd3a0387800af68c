package shadowstate

import "maps"

// Merge returns dst with patch deep-merged into it by the Device Shadow service's
// rules: a null value deletes its key; an object merged onto an object recurses; any
// other value (a scalar, an array, an object replacing a non-object) replaces the
// stored value whole. Objects left empty are removed, and nulls inside a new object
// add nothing. It returns nil when nothing is left.
//
// Neither input is modified; the result shares unchanged subtrees with both.
//
// AWS does not say whether an empty object is stored (docs/protocol.md#empty-objects).
// We never store one, at any level, as AWS does for the top-level sections: with every
// stored document in one canonical form, reporting a delta always clears it.
func Merge(dst, patch Object) Object {
	out, _ := mergeSection(dst, nil, patch, 0, false)
	return out
}

// mergeSection merges patch into state and, when withMeta is set, the matching
// metadata tree in meta, stamping every written leaf with ts. Both results are new
// objects (or nil when empty); the inputs are not modified.
func mergeSection(state, meta, patch Object, ts int64, withMeta bool) (Object, Object) {
	out := make(Object, len(state)+len(patch))
	maps.Copy(out, state)
	var outMeta Object
	if withMeta {
		outMeta = make(Object, len(meta)+len(patch))
		maps.Copy(outMeta, meta)
	}
	for k, pv := range patch {
		var nv, nm any
		switch pv := pv.(type) {
		case nil:
			// deletes k
		case Object:
			if sv, ok := out[k].(Object); ok {
				sm, _ := outMeta[k].(Object)
				m, mm := mergeSection(sv, sm, pv, ts, withMeta)
				if m != nil {
					nv, nm = m, mm
				}
			} else if c := withoutNulls(pv); c != nil {
				nv = c
				if withMeta {
					nm = stampTree(c, ts)
				}
			}
		default:
			nv = pv
			if withMeta {
				nm = stampTree(pv, ts)
			}
		}
		if nv == nil {
			delete(out, k)
			if withMeta {
				delete(outMeta, k)
			}
			continue
		}
		out[k] = nv
		if withMeta {
			outMeta[k] = nm
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, outMeta
}

// withoutNulls returns o with null members removed and empty objects pruned, at every
// level; nil when nothing is left. Arrays are kept as they are: a validated request
// holds no null inside an array.
func withoutNulls(o Object) Object {
	var out Object
	for k, v := range o {
		switch v := v.(type) {
		case nil:
			continue
		case Object:
			c := withoutNulls(v)
			if c == nil {
				continue
			}
			out = put(out, len(o), k, c)
		default:
			out = put(out, len(o), k, v)
		}
	}
	return out
}
