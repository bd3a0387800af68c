package schemas

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shadowsync/shadowsync/shadowstate"
)

type setpoint struct {
	Heat float64 `json:"heat" jsonschema:"minimum=5,maximum=30"`
	Cool float64 `json:"cool,omitempty" jsonschema:"minimum=15,maximum=35"`
}

type thermostat struct {
	Target   float64   `json:"target" jsonschema:"minimum=5,maximum=30"`
	Mode     string    `json:"mode,omitempty" jsonschema:"enum=off,enum=heat,enum=cool"`
	Setpoint *setpoint `json:"setpoint,omitempty"`
	Zones    []string  `json:"zones,omitempty" jsonschema:"maxItems=4"`
	Serial   string    `json:"serial" jsonschema:"required"`
}

func doc(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := shadowstate.Unmarshal([]byte(s), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestValidate(t *testing.T) {
	s, err := For[thermostat](Options{})
	if err != nil {
		t.Fatal(err)
	}
	valid := []string{
		`{"serial":"x"}`,
		`{"serial":"x","target":21.5,"mode":"heat","setpoint":{"heat":18},"zones":["a","b"]}`,
		`{"serial":"x","target":5}`,
		`{"serial":"x","target":30}`,
	}
	for _, v := range valid {
		if err := s.Validate(doc(t, v)); err != nil {
			t.Errorf("%s: %v", v, err)
		}
	}
	invalid := []struct {
		doc   string
		paths []string
		words string
	}{
		{`{"serial":"x","target":45}`, []string{"/target"}, "30"},
		{`{"serial":"x","target":4.9}`, []string{"/target"}, "5"},
		{`{"serial":"x","target":"warm"}`, []string{"/target"}, "string"},
		{`{"serial":"x","mode":"turbo"}`, []string{"/mode"}, "turbo"},
		{`{"serial":"x","setpoint":{"heat":2}}`, []string{"/setpoint/heat"}, "5"},
		{`{"serial":"x","zones":["a","b","c","d","e"]}`, []string{"/zones"}, "4"},
		{`{"target":20}`, []string{"/"}, "serial"},
		{`{"serial":"x","colour":"red"}`, []string{"/"}, "colour"},
		{`{"serial":"x","target":99,"mode":"turbo"}`, []string{"/target", "/mode"}, ""},
	}
	for _, tc := range invalid {
		err := s.Validate(doc(t, tc.doc))
		var se *Error
		if !errors.As(err, &se) {
			t.Errorf("%s: error %v, want *Error", tc.doc, err)
			continue
		}
		var paths []string
		for _, f := range se.Fields {
			paths = append(paths, f.Path)
		}
		for _, p := range tc.paths {
			if !strings.Contains(strings.Join(paths, " "), p) {
				t.Errorf("%s: fields %v lack %s", tc.doc, paths, p)
			}
		}
		if !strings.Contains(err.Error(), tc.words) || !strings.HasPrefix(err.Error(), "does not match thermostat: ") {
			t.Errorf("%s: message %q does not say %q", tc.doc, err, tc.words)
		}
	}
}

func TestAllowUnknownFields(t *testing.T) {
	s, err := For[thermostat](Options{AllowUnknownFields: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(doc(t, `{"serial":"x","colour":"red"}`)); err != nil {
		t.Errorf("unknown field refused: %v", err)
	}
}

func TestForRefusesNonStructs(t *testing.T) {
	if _, err := For[map[string]int](Options{}); !errors.Is(err, ErrNotStruct) {
		t.Errorf("map: %v", err)
	}
	if _, err := For[*thermostat](Options{}); err != nil {
		t.Errorf("pointer to struct: %v", err)
	}
}

func TestJSONIsTheSchema(t *testing.T) {
	s, err := For[thermostat](Options{})
	if err != nil {
		t.Fatal(err)
	}
	text := string(s.JSON())
	for _, want := range []string{`"maximum": 30`, `"heat"`, `"required"`, `"serial"`, `"additionalProperties": false`} {
		if !strings.Contains(text, want) {
			t.Errorf("schema lacks %s:\n%s", want, text)
		}
	}
	if s.Name() != "thermostat" {
		t.Errorf("Name %q", s.Name())
	}
}

func TestParse(t *testing.T) {
	s, err := Parse("limits.json", []byte(`{"type":"object","properties":{"n":{"type":"integer","maximum":3}},"additionalProperties":false}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(doc(t, `{"n":2}`)); err != nil {
		t.Errorf("valid document refused: %v", err)
	}
	err = s.Validate(doc(t, `{"n":5,"x":1}`))
	var se *Error
	if !errors.As(err, &se) || len(se.Fields) != 2 || !strings.HasPrefix(err.Error(), "does not match limits.json: ") {
		t.Errorf("invalid document: %v", err)
	}
	for _, bad := range []string{`{"type":`, `{"type":"nonsense"}`} {
		if _, err := Parse("bad.json", []byte(bad)); err == nil || !strings.Contains(err.Error(), "bad.json") {
			t.Errorf("Parse(%s): %v", bad, err)
		}
	}
}

// WriteFile writes the schema go:generate keeps in a file: the same document For
// derives, which Parse reads back and which validates as the type's schema does.
func TestWriteFile(t *testing.T) {
	type light struct {
		On         bool `json:"on"`
		Brightness int  `json:"brightness" jsonschema:"minimum=0,maximum=100"`
	}
	path := filepath.Join(t.TempDir(), "light.json")
	if err := WriteFile[light](path, Options{}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want, err := For[light](Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data, want.JSON()) {
		t.Errorf("file holds\n%s\nwant\n%s", data, want.JSON())
	}
	parsed, err := Parse(path, data)
	if err != nil {
		t.Fatal(err)
	}
	if err := parsed.Validate(map[string]any{"brightness": 150.0}); err == nil || !strings.Contains(err.Error(), "/brightness") {
		t.Errorf("brightness 150 against the written schema: %v, want an error naming /brightness", err)
	}
	if err := WriteFile[int](filepath.Join(t.TempDir(), "x.json"), Options{}); !errors.Is(err, ErrNotStruct) {
		t.Errorf("WriteFile[int]: %v, want ErrNotStruct", err)
	}
	if err := WriteFile[light](filepath.Join(t.TempDir(), "missing", "dir", "x.json"), Options{}); err == nil || !strings.Contains(err.Error(), "light") {
		t.Errorf("WriteFile into a missing directory: %v, want an error naming the type", err)
	}
}
