package reconciler

import (
	"encoding/json"
	"slices"
	"unicode/utf8"

	"github.com/shadowsync/shadowsync/shadowstate"
)

// encodeObject returns o's JSON text, byte for byte what json.Marshal(o) returns,
// for the objects a report is made of: JSON's own types (nil, bool, string,
// json.Number, Object, []any). It writes them itself, without encoding/json's
// reflection; anything else, a string it would escape or a number it would have to
// check, goes to json.Marshal, whole.
func encodeObject(o shadowstate.Object) ([]byte, error) {
	b, ok := appendPlain(make([]byte, 0, 128), o)
	if !ok {
		return json.Marshal(o)
	}
	return b, nil
}

// appendPlain appends v as json.Marshal would write it, and reports false when v is
// not something it writes itself.
func appendPlain(b []byte, v any) ([]byte, bool) {
	switch v := v.(type) {
	case nil:
		return append(b, "null"...), true
	case bool:
		if v {
			return append(b, "true"...), true
		}
		return append(b, "false"...), true
	case string:
		return appendPlainString(b, v)
	case json.Number:
		if !plainNumber(string(v)) {
			return b, false
		}
		return append(b, v...), true
	case shadowstate.Object:
		if v == nil {
			return append(b, "null"...), true
		}
		var stack [16]string
		keys := stack[:0]
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			var ok bool
			if b, ok = appendPlainString(b, k); !ok {
				return b, false
			}
			b = append(b, ':')
			if b, ok = appendPlain(b, v[k]); !ok {
				return b, false
			}
		}
		return append(b, '}'), true
	case []any:
		if v == nil {
			return append(b, "null"...), true
		}
		b = append(b, '[')
		for i, e := range v {
			if i > 0 {
				b = append(b, ',')
			}
			var ok bool
			if b, ok = appendPlain(b, e); !ok {
				return b, false
			}
		}
		return append(b, ']'), true
	}
	return b, false
}

// appendPlainString appends s quoted, when json.Marshal would write it as it is:
// valid UTF-8 with no control character, quote, backslash, <, >, & or U+2028/9.
func appendPlainString(b []byte, s string) ([]byte, bool) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return b, false
		case c >= utf8.RuneSelf:
			if !utf8.ValidString(s[i:]) || containsLineSeparators(s[i:]) {
				return b, false
			}
			i = len(s)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"'), true
}

// containsLineSeparators reports whether s holds U+2028 or U+2029, which
// json.Marshal escapes.
func containsLineSeparators(s string) bool {
	for _, r := range s {
		if r == '\u2028' || r == '\u2029' {
			return true
		}
	}
	return false
}

// plainNumber reports whether n is a JSON number literal, as json.Marshal requires of
// a json.Number (which it then writes as it is).
func plainNumber(n string) bool {
	i := 0
	if i < len(n) && n[i] == '-' {
		i++
	}
	switch {
	case i < len(n) && n[i] == '0':
		i++
	case i < len(n) && n[i] >= '1' && n[i] <= '9':
		for i < len(n) && n[i] >= '0' && n[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(n) && n[i] == '.' {
		i++
		start := i
		for i < len(n) && n[i] >= '0' && n[i] <= '9' {
			i++
		}
		if i == start {
			return false
		}
	}
	if i < len(n) && (n[i] == 'e' || n[i] == 'E') {
		i++
		if i < len(n) && (n[i] == '+' || n[i] == '-') {
			i++
		}
		start := i
		for i < len(n) && n[i] >= '0' && n[i] <= '9' {
			i++
		}
		if i == start {
			return false
		}
	}
	return i == len(n)
}
