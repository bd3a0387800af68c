package shadowstate

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// This file is a hand-written JSON decoder, fenced off from the rest of the package:
// nothing outside it calls its parser; it is reached only through Unmarshal (its fast
// path), ReplyToken and UnmarshalDocumentsStateOnly, and each falls back to
// encoding/json for anything it does not reproduce exactly. Its tests
// (fastjson_test.go, fuzz_test.go) check it against encoding/json.
//
// The fast path of Unmarshal. Decoding JSON into interface values through
// encoding/json's reflection is most of what the shadow client spends on an incoming
// message (a documents message of a 1 KB shadow took ~300 µs). fastDecode parses the
// values shadowstate reads most — JSON objects into Object or any, and the messages
// of the shadow topics — by hand, producing exactly what encoding/json with UseNumber
// would. It gives up (ok == false) on anything it does not reproduce exactly (string
// escapes, invalid UTF-8, keys that would match a field only case-insensitively,
// duplicate fields, targets that already hold values, any syntax error); Unmarshal
// then decodes the slow way, which also words the error.
//
// Why it is not a library: github.com/go-json-experiment/json (encoding/json/v2) was
// measured doing the same operations with the same contract (internal/jsoncompare;
// docs/performance.md, "fastjson.go against encoding/json/v2"). It was slower on
// every operation and payload size, and keeping encoding/json's results would still
// have taken adapters and this file's encoding/json fallback. Measure again when
// encoding/json/v2 is in the standard library.

// maxFastDepth is encoding/json's nesting limit; deeper input takes the slow path.
const maxFastDepth = 10000

// fastDecode decodes data into v if v is one of the types it knows and data is input
// it reproduces exactly; it reports whether it did.
func fastDecode(data []byte, v any) bool {
	p := parser{data: data}
	s := p.takeStacks()
	defer p.giveStacks(s)
	switch v := v.(type) {
	case *Object:
		if v == nil || *v != nil {
			return false // encoding/json would add to the existing map
		}
		val, ok := p.value()
		if !ok || !p.end() {
			return false
		}
		switch o := val.(type) {
		case nil:
			return true
		case Object:
			*v = o
			return true
		}
		return false
	case *any:
		if v == nil || *v != nil {
			return false
		}
		val, ok := p.value()
		if !ok || !p.end() {
			return false
		}
		*v = val
		return true
	case *DocumentsMessage, *DeltaMessage, *UpdateAccepted, *Document:
		if rv := reflect.ValueOf(v); rv.IsNil() || !rv.Elem().IsZero() {
			return false // encoding/json would merge into what is there
		}
		if p.isNull() {
			return p.end() // null leaves a struct as it is
		}
		switch v := v.(type) {
		case *DocumentsMessage:
			return fill(&p, v, func(m *DocumentsMessage) bool { return p.documents(m, true) })
		case *DeltaMessage:
			return fill(&p, v, func(m *DeltaMessage) bool {
				return p.message(func() bool { return p.objectField(&m.State) }, func() bool { return p.objectField(&m.Metadata) },
					&m.Version, &m.Timestamp, &m.ClientToken)
			})
		case *UpdateAccepted:
			return fill(&p, v, func(m *UpdateAccepted) bool {
				return p.message(func() bool { return p.anyField(&m.State) }, func() bool { return p.anyField(&m.Metadata) },
					&m.Version, &m.Timestamp, &m.ClientToken)
			})
		case *Document:
			return fill(&p, v, func(d *Document) bool {
				return p.message(func() bool { return p.sections(&d.State, true) }, func() bool { return p.sections((*DocumentState)(&d.Metadata), true) },
					&d.Version, &d.Timestamp, &d.ClientToken)
			})
		}
	}
	return false
}

// fill reads a message of type T into a fresh value and copies it to v only when
// the whole input was read, so that a give-up leaves v untouched for the slow path.
// Any repeated key gives up: encoding/json merges a repeated struct field's objects,
// and the readers keep only the last.
func fill[T any](p *parser, v *T, read func(*T) bool) bool {
	var m T
	if !read(&m) || !p.end() || p.repeated {
		return false
	}
	*v = m
	return true
}

// parser reads one JSON value from data. Any input it cannot reproduce exactly makes
// a method return ok == false.
type parser struct {
	data  []byte
	pos   int
	depth int
	// repeated records that some object had a key twice.
	repeated bool
	// keys and vals hold the members and elements of the objects and arrays being
	// read, innermost last, so that each is allocated once at its final size instead
	// of growing as it is read.
	keys []string
	vals []any
	// lastNum is the text of the last number read and lastVal its value: metadata
	// repeats one timestamp for every leaf an update wrote, and equal numbers can
	// share one value.
	lastNum []byte
	lastVal any
}

// scratchStacks keeps the parsers' keys and vals stacks between calls: growing them
// afresh cost every message a few allocations.
var scratchStacks = sync.Pool{New: func() any { return new(stacks) }}

type stacks struct {
	keys []string
	vals []any
}

// takeStacks gives p stacks from scratchStacks; giveStacks gives them back, emptied
// (a parse that gave up leaves values on them), unless they grew beyond what
// ordinary messages need.
func (p *parser) takeStacks() *stacks {
	s := scratchStacks.Get().(*stacks)
	p.keys, p.vals = s.keys[:0], s.vals[:0]
	return s
}

func (p *parser) giveStacks(s *stacks) {
	if cap(p.vals) > 1024 {
		return
	}
	clear(p.keys[:cap(p.keys)])
	clear(p.vals[:cap(p.vals)])
	s.keys, s.vals = p.keys[:0], p.vals[:0]
	scratchStacks.Put(s)
}

// smallInts holds the values of the integers 0 to 255, the most common numbers of
// device state, so that reading one allocates nothing.
var smallInts = func() (t [256]any) {
	for i := range t {
		t[i] = json.Number(strconv.Itoa(i))
	}
	return t
}()

func (p *parser) skipWS() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

// end reports whether only whitespace is left.
func (p *parser) end() bool {
	p.skipWS()
	return p.pos == len(p.data)
}

func (p *parser) value() (any, bool) {
	p.skipWS()
	if p.pos >= len(p.data) {
		return nil, false
	}
	switch c := p.data[p.pos]; {
	case c == '{':
		return p.object()
	case c == '[':
		return p.array()
	case c == '"':
		return p.str()
	case c == 't':
		return true, p.literal("true")
	case c == 'f':
		return false, p.literal("false")
	case c == 'n':
		return nil, p.literal("null")
	case c == '-' || c >= '0' && c <= '9':
		return p.number()
	}
	return nil, false
}

func (p *parser) literal(word string) bool {
	if !bytes.HasPrefix(p.data[p.pos:], []byte(word)) {
		return false
	}
	p.pos += len(word)
	return true
}

func (p *parser) object() (any, bool) {
	base := len(p.vals)
	ok := p.container(false, func(k string) bool {
		val, ok := p.value()
		if ok {
			p.keys = append(p.keys, k)
			p.vals = append(p.vals, val)
		}
		return ok
	})
	if !ok {
		return nil, false
	}
	keys, vals := p.keys[base:], p.vals[base:]
	o := make(Object, len(keys))
	for i, k := range keys {
		o[k] = vals[i] // a repeated key: the last one wins, as in encoding/json
	}
	if len(o) < len(keys) {
		p.repeated = true
	}
	clear(vals)
	p.keys, p.vals = p.keys[:base], p.vals[:base]
	return o, true
}

func (p *parser) array() (any, bool) {
	base := len(p.vals)
	ok := p.container(false, func(string) bool {
		val, ok := p.value()
		if ok {
			p.keys = append(p.keys, "")
			p.vals = append(p.vals, val)
		}
		return ok
	})
	if !ok {
		return nil, false
	}
	a := make([]any, len(p.vals)-base)
	copy(a, p.vals[base:])
	clear(p.vals[base:])
	p.keys, p.vals = p.keys[:base], p.vals[:base]
	return a, true
}

// container walks the object or array that opens at p.pos, checking its punctuation
// and nesting depth. For an object it reads each key (with key, or only passes over
// it when skipKeys) and calls fn with it; for an array it calls fn with "" for each
// element. fn consumes the value.
func (p *parser) container(skipKeys bool, fn func(key string) bool) bool {
	p.skipWS()
	if p.pos >= len(p.data) {
		return false
	}
	open, closing := p.data[p.pos], byte('}')
	switch open {
	case '{':
	case '[':
		closing = ']'
	default:
		return false
	}
	p.depth++
	if p.depth > maxFastDepth {
		return false
	}
	p.pos++
	p.skipWS()
	if p.pos < len(p.data) && p.data[p.pos] == closing {
		p.pos++
		p.depth--
		return true
	}
	for {
		var k string
		if open == '{' {
			p.skipWS()
			if p.pos >= len(p.data) || p.data[p.pos] != '"' {
				return false
			}
			ok := false
			if skipKeys {
				ok = p.skipString()
			} else {
				k, ok = p.key()
			}
			if !ok {
				return false
			}
			p.skipWS()
			if p.pos >= len(p.data) || p.data[p.pos] != ':' {
				return false
			}
			p.pos++
		}
		if !fn(k) {
			return false
		}
		p.skipWS()
		if p.pos >= len(p.data) {
			return false
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
		case closing:
			p.pos++
			p.depth--
			return true
		default:
			return false
		}
	}
}

// str reads a string with no escapes, no control characters and valid UTF-8.
func (p *parser) str() (string, bool) {
	start := p.pos + 1
	ascii := true
	for i := start; i < len(p.data); i++ {
		switch c := p.data[i]; {
		case c == '"':
			s := p.data[start:i]
			if !ascii && !utf8.Valid(s) {
				return "", false // encoding/json would substitute U+FFFD
			}
			p.pos = i + 1
			return string(s), true
		case c == '\\' || c < 0x20:
			return "", false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return "", false
}

// key reads an object key like str, without allocating for the keys every shadow
// message repeats.
func (p *parser) key() (string, bool) {
	end := bytes.IndexByte(p.data[p.pos+1:], '"')
	if end >= 0 {
		var k string
		switch string(p.data[p.pos+1 : p.pos+1+end]) {
		case "timestamp":
			k = "timestamp"
		case "desired":
			k = "desired"
		case "reported":
			k = "reported"
		case "delta":
			k = "delta"
		case "state":
			k = "state"
		case "metadata":
			k = "metadata"
		case "version":
			k = "version"
		case "clientToken":
			k = "clientToken"
		case "previous":
			k = "previous"
		case "current":
			k = "current"
		}
		if k != "" {
			p.pos += end + 2
			return k, true
		}
	}
	return p.str()
}

// number reads a number of JSON's grammar as a json.Number.
func (p *parser) number() (any, bool) {
	text, ok := p.scanNumber()
	if !ok {
		return nil, false
	}
	if n, ok := smallInt(text); ok {
		return smallInts[n], true
	}
	if p.lastVal == nil || !bytes.Equal(text, p.lastNum) {
		p.lastNum, p.lastVal = text, json.Number(text)
	}
	return p.lastVal, true
}

// scanNumber passes over a number of JSON's grammar and returns its text.
func (p *parser) scanNumber() ([]byte, bool) {
	d, i := p.data, p.pos
	start := i
	if d[i] == '-' {
		i++
	}
	digits := func() bool {
		j := i
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
		return i > j
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case !digits():
		return nil, false
	}
	if i < len(d) && d[i] == '.' {
		i++
		if !digits() {
			return nil, false
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if !digits() {
			return nil, false
		}
	}
	p.pos = i
	return d[start:i], true
}

// smallInt returns the value of a number literal that is one of smallInts, spelled
// as strconv.Itoa spells it ("-0" and "1.0" are not).
func smallInt(text []byte) (int, bool) {
	if len(text) > 3 {
		return 0, false
	}
	n := 0
	for _, c := range text {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, n < len(smallInts)
}

// The readers below fill a zero struct straight from the input the way encoding/json
// would, or report false where they cannot be sure to. Keys spelled exactly as a
// field go to the field; members only gives up on keys that match a field
// case-insensitively (encoding/json would take them) and on repeated keys; other
// keys are skipped, as encoding/json ignores them.

// The JSON names of the fields of each struct, for members.
var (
	stateFields     = []string{"desired", "reported", "delta"}
	snapshotFields  = []string{"state", "metadata", "version"}
	documentsFields = []string{"previous", "current", "timestamp", "clientToken"}
	messageFields   = []string{"state", "metadata", "version", "timestamp", "clientToken"}
	tokenFields     = []string{"clientToken"}
)

// intField reads an integer for an int64 field; null leaves it alone.
func (p *parser) intField(dst *int64) bool {
	if p.isNull() {
		return true
	}
	if p.pos >= len(p.data) || p.data[p.pos] != '-' && (p.data[p.pos] < '0' || p.data[p.pos] > '9') {
		return false
	}
	text, ok := p.scanNumber()
	if !ok {
		return false
	}
	i, err := strconv.ParseInt(string(text), 10, 64)
	if err != nil {
		return false // a fraction, an exponent or out of range: encoding/json's error
	}
	*dst = i
	return true
}

// stringField reads a string for a string field; null leaves it alone.
func (p *parser) stringField(dst *string) bool {
	if p.isNull() {
		return true
	}
	if p.pos >= len(p.data) || p.data[p.pos] != '"' {
		return false
	}
	s, ok := p.str()
	if ok {
		*dst = s
	}
	return ok
}

// objectField reads an object (or null) for an Object field.
func (p *parser) objectField(dst *Object) bool {
	v, ok := p.value()
	if !ok {
		return false
	}
	switch o := v.(type) {
	case nil:
		*dst = nil
		return true
	case Object:
		*dst = o
		return true
	}
	return false
}

// anyField reads any value for an interface field.
func (p *parser) anyField(dst *any) bool {
	v, ok := p.value()
	if ok {
		*dst = v
	}
	return ok
}

// sections reads a state or metadata object into s, or with keep false checks it
// as encoding/json would (the object itself and each section an object or null)
// and passes over it without building anything.
func (p *parser) sections(s *DocumentState, keep bool) bool {
	if p.isNull() {
		return true
	}
	return p.members(stateFields, func(k string) bool {
		var dst *Object
		switch k {
		case "desired":
			dst = &s.Desired
		case "reported":
			dst = &s.Reported
		case "delta":
			dst = &s.Delta
		default:
			return p.skip()
		}
		if keep {
			return p.objectField(dst)
		}
		if p.isNull() {
			return true
		}
		return p.pos < len(p.data) && p.data[p.pos] == '{' && p.skip()
	})
}

// snapshot reads a snapshot of a documents message; keepState and keepMeta say
// whether its state and metadata are built or only checked.
func (p *parser) snapshot(s *Snapshot, keepState, keepMeta bool) bool {
	if p.isNull() {
		return true
	}
	return p.members(snapshotFields, func(k string) bool {
		switch k {
		case "state":
			return p.sections(&s.State, keepState)
		case "metadata":
			return p.sections((*DocumentState)(&s.Metadata), keepMeta)
		case "version":
			return p.intField(&s.Version)
		}
		return p.skip()
	})
}

// documents reads a documents message: all of it when full, else what StateOnly
// delivers (see stripDocuments), the rest checked and passed over.
func (p *parser) documents(m *DocumentsMessage, full bool) bool {
	return p.members(documentsFields, func(k string) bool {
		switch k {
		case "previous":
			if p.isNull() {
				m.Previous = nil
				return true
			}
			m.Previous = new(Snapshot)
			return p.snapshot(m.Previous, full, full)
		case "current":
			return p.snapshot(&m.Current, true, full)
		case "timestamp":
			return p.intField(&m.Timestamp)
		case "clientToken":
			return p.stringField(&m.ClientToken)
		}
		return p.skip()
	})
}

// message reads what the delta, update-accepted and get-accepted messages share:
// state and metadata through the given readers, then version, timestamp and
// clientToken.
func (p *parser) message(state, metadata func() bool, version, timestamp *int64, token *string) bool {
	return p.members(messageFields, func(k string) bool {
		switch k {
		case "state":
			return state()
		case "metadata":
			return metadata()
		case "version":
			return p.intField(version)
		case "timestamp":
			return p.intField(timestamp)
		case "clientToken":
			return p.stringField(token)
		}
		return p.skip()
	})
}

// skip passes over one value without building it. It accepts only what value
// accepts, and strings with escapes too (checked for well-formed escapes), since
// nothing of a skipped value is kept.
func (p *parser) skip() bool {
	p.skipWS()
	if p.pos >= len(p.data) {
		return false
	}
	switch c := p.data[p.pos]; {
	case c == '{', c == '[':
		return p.container(true, func(string) bool { return p.skip() })
	case c == '"':
		return p.skipString()
	case c == '-' || c >= '0' && c <= '9':
		_, ok := p.scanNumber()
		return ok
	}
	_, ok := p.value() // a literal: nothing to allocate
	return ok
}

// skipString passes over a string, checking its escapes.
func (p *parser) skipString() bool {
	for i := p.pos + 1; i < len(p.data); i++ {
		switch c := p.data[i]; {
		case c == '"':
			p.pos = i + 1
			return true
		case c < 0x20:
			return false
		case c == '\\':
			i++
			if i >= len(p.data) {
				return false
			}
			switch p.data[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(p.data) {
					return false
				}
				for _, h := range p.data[i+1 : i+5] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return false
					}
				}
				i += 4
			default:
				return false
			}
		}
	}
	return false
}

// members walks the members of the object at p.pos, calling fn with each key; fn
// consumes the value. It gives up on a key of names seen before (encoding/json
// would merge or overwrite) and on a key that is not one of names but matches one
// case-insensitively (encoding/json would take it for that field). Other keys may
// repeat: fn skips them, as encoding/json ignores them.
func (p *parser) members(names []string, fn func(key string) bool) bool {
	p.skipWS()
	if p.pos >= len(p.data) || p.data[p.pos] != '{' {
		return false
	}
	var seen uint64 // bit i: names[i] was seen
	return p.container(false, func(k string) bool {
		for i, n := range names {
			if k == n {
				if seen&(1<<i) != 0 {
					return false
				}
				seen |= 1 << i
			} else if strings.EqualFold(k, n) {
				return false
			}
		}
		return fn(k)
	})
}

// isNull consumes a null if one is next.
func (p *parser) isNull() bool {
	p.skipWS()
	if bytes.HasPrefix(p.data[p.pos:], []byte("null")) {
		p.pos += 4
		return true
	}
	return false
}

// fastDocumentsStateOnly decodes a documents message the way StateOnly delivers it
// (see stripDocuments), skipping the metadata and the previous state instead of
// building them. It reports false, leaving m alone, where it cannot be sure to
// match encoding/json.
func fastDocumentsStateOnly(data []byte, m *DocumentsMessage) bool {
	p := parser{data: data}
	s := p.takeStacks()
	defer p.giveStacks(s)
	if p.isNull() {
		if p.end() {
			*m = DocumentsMessage{}
			return true
		}
		return false
	}
	return fill(&p, m, func(m *DocumentsMessage) bool { return p.documents(m, false) })
}

// stripDocuments is what a StateOnly watcher receives of m: no metadata, and of
// the previous snapshot only its version.
func stripDocuments(m DocumentsMessage) DocumentsMessage {
	m.Current.Metadata = DocumentMetadata{}
	if m.Previous != nil {
		m.Previous = &Snapshot{Version: m.Previous.Version}
	}
	return m
}

// UnmarshalDocumentsStateOnly decodes a documents message keeping only each snapshot's
// state and version (its metadata dropped): what a client that watches many shadows
// needs, for a fraction of Unmarshal's allocations.
func UnmarshalDocumentsStateOnly(data []byte, m *DocumentsMessage) error {
	if fastDocumentsStateOnly(data, m) {
		return nil
	}
	var full DocumentsMessage
	if err := Unmarshal(data, &full); err != nil {
		return err
	}
	*m = stripDocuments(full)
	return nil
}

// ReplyToken returns the clientToken of a reply as encoding/json would decode it into
// a string field, skipping everything else instead of building it.
func ReplyToken(data []byte) (string, error) {
	p := parser{data: data}
	var token string
	ok := p.members(tokenFields, func(k string) bool {
		if k != "clientToken" {
			return p.skip()
		}
		return p.stringField(&token)
	})
	if ok && p.end() {
		return token, nil
	}
	var t struct {
		ClientToken string `json:"clientToken"`
	}
	if err := Unmarshal(data, &t); err != nil {
		return "", err
	}
	return t.ClientToken, nil
}
