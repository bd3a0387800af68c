package shadowstate

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
)

// Object is a JSON object as shadowstate holds it. Its values are nil, bool, string,
// json.Number, []any or Object, which is what Unmarshal produces. Objects handed to and
// returned by this package are treated as immutable: functions return new objects and
// may share unchanged subtrees with their inputs.
type Object = map[string]any

// Unmarshal decodes JSON into v the way shadowstate reads documents: numbers become
// json.Number, so that integers of any size and the exact text of every number survive
// a round trip. Trailing data after the first JSON value is an error.
func Unmarshal(data []byte, v any) error {
	if fastDecode(data, v) {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("shadowstate: trailing data after JSON value")
	}
	return nil
}

// Equal reports whether two JSON values are equal as the delta rules compare them:
// objects key by key, arrays element by element and in order, numbers by value (so 1
// and 1.0 are equal), everything else exactly. Values of different types are unequal.
func Equal(a, b any) bool {
	switch a := a.(type) {
	case nil:
		return b == nil
	case bool:
		bb, ok := b.(bool)
		return ok && a == bb
	case string:
		bs, ok := b.(string)
		return ok && a == bs
	case json.Number:
		// Decoded documents hold every number as json.Number, so this pair is the
		// common one: compare the texts first and go by value only when they differ,
		// without number's type switches. Against any other type, fall through to them.
		if bn, ok := b.(json.Number); ok {
			return a == bn || numbersEqual(string(a), string(bn))
		}
	case Object:
		bo, ok := b.(Object)
		if !ok || len(a) != len(bo) {
			return false
		}
		for k, av := range a {
			bv, ok := bo[k]
			if !ok || !Equal(av, bv) {
				return false
			}
		}
		return true
	case []any:
		ba, ok := b.([]any)
		if !ok || len(a) != len(ba) {
			return false
		}
		for i := range a {
			if !Equal(a[i], ba[i]) {
				return false
			}
		}
		return true
	}
	an, ok := number(a)
	if !ok {
		return false
	}
	bn, ok := number(b)
	return ok && numbersEqual(an, bn)
}

// number returns the JSON text of a numeric value, accepting the Go number types a
// caller may have put into an Object by hand as well as json.Number.
func number(v any) (string, bool) {
	switch n := v.(type) {
	case json.Number:
		return string(n), true
	case float64:
		return strconv.FormatFloat(n, 'g', -1, 64), true
	case float32:
		return strconv.FormatFloat(float64(n), 'g', -1, 32), true
	case int:
		return strconv.Itoa(n), true
	case int64:
		return strconv.FormatInt(n, 10), true
	case int32:
		return strconv.FormatInt(int64(n), 10), true
	case uint64:
		return strconv.FormatUint(n, 10), true
	}
	return "", false
}

// numbersEqual compares two JSON number literals by value. Integer literals compare
// exactly, whatever their size; anything with a fraction or exponent compares as
// float64. AWS does not document whether 1 and 1.0 are equal; we follow AWS's own local
// shadow service, which treats them as equal (docs/protocol.md#number-equality).
func numbersEqual(a, b string) bool {
	if a == b {
		return true
	}
	if isIntLiteral(a) && isIntLiteral(b) {
		return canonicalInt(a) == canonicalInt(b)
	}
	fa, errA := strconv.ParseFloat(a, 64)
	fb, errB := strconv.ParseFloat(b, 64)
	if errA != nil || errB != nil {
		return false
	}
	return fa == fb
}

func isIntLiteral(s string) bool {
	// A plain loop: strings.ContainsAny builds a byte set on every call, which costs
	// more than scanning a number literal of a few bytes.
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '.' || c == 'e' || c == 'E' {
			return false
		}
	}
	return true
}

func canonicalInt(s string) string {
	if s == "-0" {
		return "0"
	}
	return s
}

// jsonSize returns the length in bytes of v's compact JSON encoding without building
// it: strings count with JSON's minimal escaping, numbers with their literal text.
func jsonSize(v any) int {
	switch v := v.(type) {
	case nil:
		return 4
	case bool:
		if v {
			return 4
		}
		return 5
	case string:
		return quotedSize(v)
	case Object:
		if len(v) == 0 {
			return 2
		}
		n := 1 + 2*len(v) // two braces, a colon per member, a comma between members
		for k, e := range v {
			n += quotedSize(k) + jsonSize(e)
		}
		return n
	case []any:
		if len(v) == 0 {
			return 2
		}
		n := 1 + len(v) // brackets plus commas
		for _, e := range v {
			n += jsonSize(e)
		}
		return n
	}
	s, _ := number(v)
	return len(s)
}

func quotedSize(s string) int {
	n := 2
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t' || c == '\b' || c == '\f':
			n += 2
		case c < 0x20:
			n += 6
		default:
			n++
		}
	}
	return n
}

// depth returns how many levels of objects and arrays v nests: 0 for a scalar, 1 for
// an object or array of scalars, and so on.
func depth(v any) int {
	d := 0
	switch v := v.(type) {
	case Object:
		for _, e := range v {
			d = max(d, depth(e))
		}
	case []any:
		for _, e := range v {
			d = max(d, depth(e))
		}
	default:
		return 0
	}
	return d + 1
}

// arrayHoldsNull reports whether a null appears anywhere inside an array in v.
func arrayHoldsNull(v any, inArray bool) bool {
	switch v := v.(type) {
	case nil:
		return inArray
	case Object:
		for _, e := range v {
			if arrayHoldsNull(e, inArray) {
				return true
			}
		}
	case []any:
		for _, e := range v {
			if arrayHoldsNull(e, true) {
				return true
			}
		}
	}
	return false
}
