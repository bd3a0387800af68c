package shadowstate

// Delta returns the difference between a shadow's desired and reported state as the
// Device Shadow service computes it: every key of desired whose value reported lacks
// or holds differently. Nested objects recurse and keep only differing keys (with the
// path to them); arrays and scalars compare as whole values; keys found only in
// reported never appear. It returns nil when there is no difference.
//
// The result shares values with desired; treat it as immutable.
func Delta(desired, reported Object) Object {
	var out Object
	for k, dv := range desired {
		rv, ok := reported[k]
		if !ok {
			out = put(out, len(desired), k, dv)
			continue
		}
		if dobj, ok := dv.(Object); ok {
			if robj, ok := rv.(Object); ok {
				if sub := Delta(dobj, robj); len(sub) > 0 {
					out = put(out, len(desired), k, sub)
				}
				continue
			}
		}
		if !Equal(dv, rv) {
			out = put(out, len(desired), k, dv)
		}
	}
	return out
}

// put sets o[k] = v, allocating o on first use so that an empty delta costs nothing,
// with room for every key of desired (n) so that it never grows.
func put(o Object, n int, k string, v any) Object {
	if o == nil {
		o = make(Object, n)
	}
	o[k] = v
	return o
}
