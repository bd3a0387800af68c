package shadowstate

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

// slowUnmarshal is Unmarshal without its fast path: encoding/json with UseNumber.
func slowUnmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("trailing data")
	}
	return nil
}

// targets returns a fresh value of every type the fast path knows.
func targets() []any {
	return []any{new(Object), new(any), new(DocumentsMessage), new(DeltaMessage), new(UpdateAccepted), new(Document)}
}

// sameAsEncodingJSON fails the test unless Unmarshal decodes data into every target
// type exactly as encoding/json does: both fail, or both succeed with equal values.
func sameAsEncodingJSON(t *testing.T, data []byte) {
	t.Helper()
	fast, slow := targets(), targets()
	for i := range fast {
		errF, errS := Unmarshal(data, fast[i]), slowUnmarshal(data, slow[i])
		if (errF == nil) != (errS == nil) {
			t.Fatalf("%T from %q: Unmarshal error %v, encoding/json error %v", fast[i], data, errF, errS)
		}
		if errF == nil && !reflect.DeepEqual(fast[i], slow[i]) {
			t.Fatalf("%T from %q:\n Unmarshal     %#v\n encoding/json %#v", fast[i], data, fast[i], slow[i])
		}
	}
}

// fastJSONSeeds are the inputs of the table test and the fuzz corpus: real messages
// and every case the fast path must give up on or get exactly right.
func fastJSONSeeds() []string {
	seeds := []string{
		``, ` `, `null`, `true`, `false`, `0`, `-0`, `-`, `01`, `1.`, `1e`, `1e+`, `.5`, `-1.25e-3`, `1E9`,
		`12345678901234567890123`, `"s"`, `"a\"b"`, `"\u00e9"`, "\"\xff\"", "\"a\x01\"", `"é"`,
		`[]`, `[1,[2,[3]],{"a":null}]`, `[1,]`, `[,1]`, `{}`, `{"a":1,}`, `{"a" 1}`, `{"a":1}x`,
		`{"a":1} `, " \n\t{\r\"a\" : [ 1 , 2 ] }\n", `{"a":1,"a":2}`, `{"a":{"b":1},"a":{"c":2}}`,
		`{"state":{"desired":{"a":1}},"version":3,"timestamp":4,"clientToken":"t"}`,
		`{"state":{"desired":{"a":1},"desired":{"b":2}},"version":3}`,
		`{"state":null,"metadata":null,"version":null,"timestamp":null,"clientToken":null}`,
		`{"state":[],"version":1}`, `{"state":"x"}`, `{"version":"3"}`, `{"version":1.0}`, `{"version":1e2}`,
		`{"version":9223372036854775808}`, `{"Version":3}`, `{"VERSION":3,"version":4}`, `{"CLIENTTOKEN":"x"}`,
		`{"clienttoken":"x"}`, `{"clientToken":5}`, `{"ſtate":{}}`, `{"current":{"ſtate":{}}}`,
		`{"previous":null,"current":{"state":{"reported":{"k":1}},"metadata":{"reported":{"k":{"timestamp":1}}},"version":1},"timestamp":1,"clientToken":"c"}`,
		`{"previous":{"state":{},"metadata":{},"version":1},"current":{"state":{"desired":{"a":[1,2]},"reported":{"a":[1]}},"metadata":{},"version":2},"timestamp":2}`,
		`{"previous":5}`, `{"current":null}`, `{"current":{"state":{"Desired":{}}}}`, `{"current":{"version":"1"}}`,
		`{"state":{"desired":{"a":1},"reported":{"b":null},"delta":{"a":1}},"metadata":{"desired":{"a":{"timestamp":1}}},"version":7,"timestamp":8}`,
		`{"unknown":{"deep":[1,2,{"x":"y"}]},"version":2}`, `{"state":{"desired":{"a":1}}`, `{"a":tru}`, `{"a":nul}`,
		strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
		strings.Repeat(`{"a":`, 200) + "1" + strings.Repeat("}", 200),
	}
	// Real messages of a shadow's life, as the service words them.
	s := Shadow{ID: ID{Thing: "T"}}
	now := time.Unix(1718000000, 0)
	for _, req := range []string{
		`{"state":{"desired":{"temp":21,"mode":"heat","sched":[1,2,3]}},"clientToken":"aa"}`,
		`{"state":{"reported":{"temp":19.5,"nested":{"x":{"y":true}}}}}`,
		`{"state":{"reported":{"temp":21,"mode":"heat","sched":[1,2,3]},"desired":{"mode":null}},"version":2}`,
	} {
		out := Apply(s, OpUpdate, []byte(req), now)
		if out.Rejected != nil {
			continue
		}
		s = out.Shadow
		for _, m := range []any{out.Accepted, out.Delta, out.Documents} {
			if m == nil || reflect.ValueOf(m).IsNil() {
				continue
			}
			b, _ := json.Marshal(m)
			seeds = append(seeds, string(b))
		}
	}
	if out := Apply(s, OpGet, []byte(`{"clientToken":"g"}`), now); out.Accepted != nil {
		b, _ := json.Marshal(out.Accepted)
		seeds = append(seeds, string(b))
	}
	return seeds
}

func TestFastDecodeMatchesEncodingJSON(t *testing.T) {
	for _, s := range fastJSONSeeds() {
		sameAsEncodingJSON(t, []byte(s))
	}
}

// The fast path really is taken for the messages the client receives.
func TestFastDecodeTakesTheMessages(t *testing.T) {
	taken := 0
	for _, s := range fastJSONSeeds() {
		if strings.Contains(s, `"timestamp":1718000000`) {
			for _, v := range targets()[2:] {
				if fastDecode([]byte(s), v) {
					taken++
				}
			}
		}
	}
	if taken < 8 {
		t.Errorf("the fast path decoded only %d real messages into a message type", taken)
	}
	var d DocumentsMessage
	doc := `{"previous":null,"current":{"state":{"reported":{"k":1}},"metadata":{"reported":{"k":{"timestamp":1}}},"version":1},"timestamp":1,"clientToken":"c"}`
	if !fastDecode([]byte(doc), &d) || d.Current.Version != 1 || d.ClientToken != "c" {
		t.Errorf("documents message not decoded by the fast path: %+v", d)
	}
}

func FuzzFastDecode(f *testing.F) {
	for _, s := range fastJSONSeeds() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		sameAsEncodingJSON(t, data)
	})
}

// statesOnlyLikeFull fails the test unless the StateOnly decode of data is the full
// decode stripped, or both fail.
func statesOnlyLikeFull(t *testing.T, data []byte) {
	t.Helper()
	var full, lite DocumentsMessage
	errF, errL := slowUnmarshal(data, &full), UnmarshalDocumentsStateOnly(data, &lite)
	if (errF == nil) != (errL == nil) {
		t.Fatalf("documents from %q: encoding/json error %v, state-only error %v", data, errF, errL)
	}
	if errF == nil {
		if want := stripDocuments(full); !reflect.DeepEqual(lite, want) {
			t.Fatalf("documents from %q:\n state-only %#v\n want       %#v", data, lite, want)
		}
	}
}

func TestDocumentsStateOnlyMatchesFullDecode(t *testing.T) {
	seeds := append(fastJSONSeeds(),
		`{"previous":{"state":"x"},"current":{}}`, `{"previous":{"state":{"desired":5}}}`,
		`{"previous":{"metadata":{"reported":[]}}}`, `{"current":{"metadata":{"desired":"s"}}}`,
		`{"previous":{"state":{"desired":{"a\\"b":"\\u00e9\\n"}}}}`, `{"previous":{"state":{"desired":{"a":"\\x"}}}}`,
		`{"current":{"state":{"desired":{"a":1}},"state":{"reported":{}}}}`, `{"current":{"Metadata":{}}}`,
		`{"previous":null,"previous":null}`, `{"current":{"version":1},"timestamp":2,"clientToken":"t","extra":[{"deep":true}]}`,
	)
	lite := 0
	for _, s := range seeds {
		statesOnlyLikeFull(t, []byte(s))
		var m DocumentsMessage
		if strings.Contains(s, `"current":{"state"`) && fastDocumentsStateOnly([]byte(s), &m) {
			lite++
		}
	}
	if lite < 3 {
		t.Errorf("the state-only fast path decoded only %d real documents messages", lite)
	}
}

func FuzzDocumentsStateOnly(f *testing.F) {
	for _, s := range fastJSONSeeds() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		statesOnlyLikeFull(t, data)
	})
}

// ReplyToken agrees with encoding/json decoding the clientToken field.
func TestReplyTokenMatchesEncodingJSON(t *testing.T) {
	for _, s := range append(fastJSONSeeds(), `{"clientToken":"a","clientToken":"b"}`, `{"clientToken":"\u0041"}`, `{"CLIENTTOKEN":"x"}`, `{"clientToken":"x","ClientToken":"y"}`) {
		replyTokenLikeEncodingJSON(t, []byte(s))
	}
}

func replyTokenLikeEncodingJSON(t *testing.T, data []byte) {
	t.Helper()
	var want struct {
		ClientToken string `json:"clientToken"`
	}
	errW := slowUnmarshal(data, &want)
	got, err := ReplyToken(data)
	if (err == nil) != (errW == nil) || err == nil && got != want.ClientToken {
		t.Fatalf("token of %q: got %q, %v; encoding/json %q, %v", data, got, err, want.ClientToken, errW)
	}
}

func FuzzReplyToken(f *testing.F) {
	for _, s := range fastJSONSeeds() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { replyTokenLikeEncodingJSON(t, data) })
}

// Typed nil pointers get encoding/json's error, not a panic.
func TestUnmarshalIntoNilPointers(t *testing.T) {
	for _, v := range []any{(*Object)(nil), (*any)(nil), (*DeltaMessage)(nil), (*DocumentsMessage)(nil)} {
		if err := Unmarshal([]byte(`{"state":{}}`), v); err == nil {
			t.Errorf("Unmarshal into %T(nil) succeeded", v)
		}
	}
}
