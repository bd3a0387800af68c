package jsoncompare

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"sync"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	jsonv1 "github.com/go-json-experiment/json/v1"

	"github.com/shadowsync/shadowsync/shadowstate"
)

// This file is shadowstate's three decoding operations written on the library, as
// shadowstate would have to write them to keep its contract (values as encoding/json
// with UseNumber decodes them, encoding/json's errors): the library's decoder where
// it is sure to agree, encoding/json where it is not (the same fallback fastjson.go
// has).

// libOptions make the library decode as close to encoding/json as it can without
// giving up its speed: names matched case-insensitively as encoding/json matches
// them (without v2's folding of '-' and '_'), and Object and any values built by
// readValue so that numbers become json.Number. Duplicate names and invalid UTF-8
// stay errors (v2's default) and take the fallback: encoding/json merges the one and
// replaces the other with U+FFFD.
var libOptions = jsonv2.JoinOptions(
	jsonv2.MatchCaseInsensitiveNames(true),
	jsonv1.MatchCaseSensitiveDelimiter(true),
	jsonv2.WithUnmarshalers(jsonv2.JoinUnmarshalers(
		jsonv2.UnmarshalFromFunc(func(dec *jsontext.Decoder, v *any) error {
			x, err := readValue(dec)
			*v = x
			return err
		}),
		jsonv2.UnmarshalFromFunc(func(dec *jsontext.Decoder, o *shadowstate.Object) error {
			switch dec.PeekKind() {
			case 'n':
				_, err := dec.ReadToken()
				*o = nil
				return err
			case '{':
				x, err := readValue(dec)
				*o, _ = x.(shadowstate.Object)
				return err
			}
			return errors.ErrUnsupported // the library's own type error
		}),
	)),
)

// readValue reads one JSON value into shadowstate's generic form with the library's
// tokenizer.
func readValue(dec *jsontext.Decoder) (any, error) {
	tok, err := dec.ReadToken()
	if err != nil {
		return nil, err
	}
	switch tok.Kind() {
	case 'n':
		return nil, nil
	case 'f', 't':
		return tok.Bool(), nil
	case '"':
		return tok.String(), nil
	case '0':
		return json.Number(tok.String()), nil
	case '{':
		o := shadowstate.Object{}
		for dec.PeekKind() != '}' {
			name, err := dec.ReadToken()
			if err != nil {
				return nil, err
			}
			k := name.String() // before the next read voids the token
			v, err := readValue(dec)
			if err != nil {
				return nil, err
			}
			o[k] = v
		}
		_, err := dec.ReadToken()
		return o, err
	case '[':
		a := []any{}
		for dec.PeekKind() != ']' {
			v, err := readValue(dec)
			if err != nil {
				return nil, err
			}
			a = append(a, v)
		}
		_, err := dec.ReadToken()
		return a, err
	}
	return nil, errors.New("unexpected token")
}

// libUnmarshal is shadowstate.Unmarshal on the library.
func libUnmarshal(data []byte, v any) error {
	if err := jsonv2.Unmarshal(data, v, libOptions); err == nil {
		return nil
	}
	return stdUnmarshal(data, v)
}

// stdUnmarshal is encoding/json with UseNumber: the baseline, and both decoders'
// fallback.
func stdUnmarshal(data []byte, v any) error {
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

// libReplyToken is shadowstate.ReplyToken on the library's tokenizer: the
// clientToken member of a top-level object, everything else skipped.
func libReplyToken(data []byte) (string, error) {
	if token, ok := libTokenScan(data); ok {
		return token, nil
	}
	var t struct {
		ClientToken string `json:"clientToken"`
	}
	if err := stdUnmarshal(data, &t); err != nil {
		return "", err
	}
	return t.ClientToken, nil
}

// tokenDecoders keeps decoders between calls, as the library's own Unmarshal does:
// a new one costs more than the scan of a small reply.
var tokenDecoders = sync.Pool{New: func() any { return new(pooledDecoder) }}

type pooledDecoder struct {
	r   bytes.Reader
	dec jsontext.Decoder
}

func libTokenScan(data []byte) (string, bool) {
	pd := tokenDecoders.Get().(*pooledDecoder)
	defer tokenDecoders.Put(pd)
	pd.r.Reset(data)
	pd.dec.Reset(&pd.r)
	dec := &pd.dec
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '{' {
		return "", false
	}
	var token string
	for dec.PeekKind() != '}' {
		name, err := dec.ReadToken()
		if err != nil {
			return "", false
		}
		switch n := name.String(); {
		case n == "clientToken":
			tok, err := dec.ReadToken()
			switch {
			case err != nil:
				return "", false
			case tok.Kind() == '"':
				token = tok.String()
			case tok.Kind() != 'n':
				return "", false
			}
		case foldEqual(n, "clientToken"):
			return "", false // encoding/json would take it
		default:
			if dec.SkipValue() != nil {
				return "", false
			}
		}
	}
	if _, err := dec.ReadToken(); err != nil {
		return "", false
	}
	if _, err := dec.ReadToken(); err != io.EOF {
		return "", false
	}
	return token, true
}

// foldEqual is a conservative stand-in for encoding/json's name folding: it says
// yes to anything encoding/json might fold together (and to more), which only sends
// more input to the fallback.
func foldEqual(a, b string) bool {
	return bytes.EqualFold([]byte(a), []byte(b)) || len(a) >= len(b) && len(a) <= 2*len(b) && hasNonASCII(a)
}

func hasNonASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return true
		}
	}
	return false
}

// skippedSections stands for a state or metadata object the StateOnly decode does
// not keep: the library checks its syntax and the types encoding/json would check
// (an object or null, each section an object or null) and builds nothing.
type skippedSections struct{}

func (skippedSections) UnmarshalJSONFrom(dec *jsontext.Decoder) error {
	switch dec.PeekKind() {
	case 'n':
		_, err := dec.ReadToken()
		return err
	case '{':
	default:
		return errors.New("not an object")
	}
	if _, err := dec.ReadToken(); err != nil {
		return err
	}
	for dec.PeekKind() != '}' {
		name, err := dec.ReadToken()
		if err != nil {
			return err
		}
		switch name.String() {
		case "desired", "reported", "delta":
			if k := dec.PeekKind(); k != '{' && k != 'n' {
				return errors.New("section is not an object")
			}
		}
		if err := dec.SkipValue(); err != nil {
			return err
		}
	}
	_, err := dec.ReadToken()
	return err
}

type stateOnlyDocuments struct {
	Previous *struct {
		State    skippedSections `json:"state"`
		Metadata skippedSections `json:"metadata"`
		Version  int64           `json:"version"`
	} `json:"previous"`
	Current struct {
		State    shadowstate.DocumentState `json:"state"`
		Metadata skippedSections           `json:"metadata"`
		Version  int64                     `json:"version"`
	} `json:"current"`
	Timestamp   int64  `json:"timestamp"`
	ClientToken string `json:"clientToken"`
}

// libDocumentsStateOnly is shadowstate.UnmarshalDocumentsStateOnly on the library.
func libDocumentsStateOnly(data []byte, m *shadowstate.DocumentsMessage) error {
	var d stateOnlyDocuments
	if err := jsonv2.Unmarshal(data, &d, libOptions); err != nil {
		var full shadowstate.DocumentsMessage
		if err := stdUnmarshal(data, &full); err != nil {
			return err
		}
		*m = full
		m.Current.Metadata = shadowstate.DocumentMetadata{}
		if m.Previous != nil {
			m.Previous = &shadowstate.Snapshot{Version: m.Previous.Version}
		}
		return nil
	}
	*m = shadowstate.DocumentsMessage{
		Current:     shadowstate.Snapshot{State: d.Current.State, Version: d.Current.Version},
		Timestamp:   d.Timestamp,
		ClientToken: d.ClientToken,
	}
	if d.Previous != nil {
		m.Previous = &shadowstate.Snapshot{Version: d.Previous.Version}
	}
	return nil
}

// libMarshalOptions encode shadowstate's values as encoding/json does: json.Number
// as its literal, object members sorted by name.
var libMarshalOptions = jsonv2.JoinOptions(
	jsonv2.Deterministic(true),
	jsonv2.WithMarshalers(jsonv2.MarshalToFunc(func(enc *jsontext.Encoder, n json.Number) error {
		return enc.WriteValue(jsontext.Value(n))
	})),
)
