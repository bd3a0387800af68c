package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/invopop/jsonschema"
	validator "github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// Options control how a schema is derived from a Go type. The zero value is the
// strict default.
type Options struct {
	// AllowUnknownFields lets a document carry fields the type does not declare. False
	// (the default) refuses them, so that a misspelt desired field is reported instead
	// of silently ignored.
	AllowUnknownFields bool
}

// Schema is the JSON Schema of a Go type, derived from its exported fields and their
// json and jsonschema struct tags (for example `jsonschema:"minimum=5,maximum=30"` or
// `jsonschema:"enum=off,enum=heat,enum=cool"`), and compiled once for validation.
// Fields are optional unless tagged `jsonschema:"required"`, because desired state is
// usually partial. A Schema is immutable and safe for concurrent use.
type Schema struct {
	name     string
	doc      []byte
	compiled *validator.Schema
}

// ErrNotStruct is returned by For for a type whose schema is not a JSON object.
var ErrNotStruct = errors.New("schemas: device state must be a struct")

// For derives and compiles the schema of T, which must be a struct (or a pointer to
// one). The error says what in T could not be turned into a schema.
func For[T any](opts Options) (*Schema, error) {
	return forType(reflect.TypeFor[T](), opts)
}

func forType(t reflect.Type, opts Options) (*Schema, error) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("%w: %v is a %v", ErrNotStruct, t, t.Kind())
	}
	r := jsonschema.Reflector{
		RequiredFromJSONSchemaTags: true,
		AllowAdditionalProperties:  opts.AllowUnknownFields,
	}
	s := r.ReflectFromType(t)
	s.ID = jsonschema.ID("shadowsync:schemas/" + t.Name() + ".json")
	doc, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("schemas: %v: %w", t, err)
	}
	return compile(t.Name(), string(s.ID), append(doc, '\n'))
}

// WriteFile writes the JSON Schema of T (as For derives it with opts) to path, for a
// program that go:generate runs to keep a committed schema file in step with the type:
//
//	//go:generate go run . --write-schema schemas/light.json
//
// with, in that program's main, schemas.WriteFile[Light](path, schemas.Options{}) when
// the flag is set. The file is what `shadowsync schema FILE --validate DOC` checks
// documents against.
func WriteFile[T any](path string, opts Options) error {
	s, err := For[T](opts)
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, s.JSON(), 0o644); err != nil {
		return fmt.Errorf("schemas: write the schema of %s: %w", s.Name(), err)
	}
	return nil
}

// Parse compiles a JSON Schema document (draft 2020-12 unless its $schema says
// otherwise), checking it against its metaschema; name identifies it in errors. It is
// for schemas written by hand or kept in files, such as those go generate writes.
// References to other files are not followed.
func Parse(name string, doc []byte) (*Schema, error) {
	var text bytes.Buffer
	if err := json.Indent(&text, bytes.TrimSpace(doc), "", "  "); err != nil {
		return nil, fmt.Errorf("schemas: %s is not JSON: %w", name, err)
	}
	text.WriteByte('\n')
	return compile(name, "shadowsync:schemas/parsed.json", text.Bytes())
}

// compile compiles the schema text, whose resource URL is url.
func compile(name, url string, text []byte) (*Schema, error) {
	parsed, err := validator.UnmarshalJSON(bytes.NewReader(text))
	if err != nil {
		return nil, fmt.Errorf("schemas: %s is not JSON: %w", name, err)
	}
	c := validator.NewCompiler()
	if err := c.AddResource(url, parsed); err != nil {
		return nil, fmt.Errorf("schemas: %s: %w", name, err)
	}
	compiled, err := c.Compile(url)
	if err != nil {
		return nil, fmt.Errorf("schemas: %s is not a valid JSON Schema: %w", name, err)
	}
	return &Schema{name: name, doc: text, compiled: compiled}, nil
}

// Name returns the name of the Go type the schema describes (for Parse, the name it
// was given).
func (s *Schema) Name() string { return s.name }

// JSON returns the schema document, indented, for files and tools.
func (s *Schema) JSON() []byte { return slices.Clone(s.doc) }

// Validate checks a decoded JSON document (as shadowstate.Unmarshal or
// encoding/json produce it) against the schema. It returns nil or an *Error listing
// every field that is wrong, each with its path and the reason.
func (s *Schema) Validate(doc any) error {
	err := s.compiled.Validate(doc)
	if err == nil {
		return nil
	}
	var ve *validator.ValidationError
	if !errors.As(err, &ve) {
		return fmt.Errorf("schemas: validate against %s: %w", s.name, err)
	}
	out := &Error{Type: s.name}
	collect(ve, doc, out)
	if len(out.Fields) == 0 { // cannot happen for a failed validation; keep the cause
		out.Fields = append(out.Fields, FieldError{Path: "/", Reason: ve.Error()})
	}
	return out
}

// printer renders the validator's messages in English.
var printer = message.NewPrinter(language.English)

// collect gathers the leaf errors of a validation: the ones that say what is wrong
// with a value rather than that a (referenced) sub-schema failed.
func collect(e *validator.ValidationError, doc any, out *Error) {
	if len(e.Causes) == 0 {
		path := "/"
		if len(e.InstanceLocation) > 0 {
			esc := make([]string, len(e.InstanceLocation))
			for i, p := range e.InstanceLocation {
				esc[i] = strings.NewReplacer("~", "~0", "/", "~1").Replace(p)
			}
			path += strings.Join(esc, "/")
		}
		reason := e.ErrorKind.LocalizedString(printer)
		if v, ok := scalarAt(doc, e.InstanceLocation); ok && !strings.Contains(reason, v) {
			reason += " (found " + v + ")"
		}
		fe := FieldError{Path: path, Reason: reason}
		if !slices.Contains(out.Fields, fe) {
			out.Fields = append(out.Fields, fe)
		}
		return
	}
	for _, c := range e.Causes {
		collect(c, doc, out)
	}
}

// scalarAt returns the JSON text of the string, number or boolean at path in doc.
func scalarAt(doc any, path []string) (string, bool) {
	for _, p := range path {
		switch d := doc.(type) {
		case map[string]any:
			doc = d[p]
		case []any:
			i, err := strconv.Atoi(p)
			if err != nil || i < 0 || i >= len(d) {
				return "", false
			}
			doc = d[i]
		default:
			return "", false
		}
	}
	switch doc.(type) {
	case string, bool, json.Number, float64:
		b, err := json.Marshal(doc)
		return string(b), err == nil
	}
	return "", false
}

// Error lists what is wrong with a document: one FieldError per offending field.
type Error struct {
	// Type is the name of the Go type whose schema the document failed.
	Type   string
	Fields []FieldError
}

// FieldError is one problem with one field: Path is a JSON pointer into the document
// ("/setpoint/heat"), Reason says what is wrong.
type FieldError struct {
	Path   string
	Reason string
}

// Error reports every field and its reason, e.g. "does not match Thermostat: /target:
// maximum: got 45, want 30; /mode: value must be one of 'off', 'heat', 'cool' (found
// "turbo")".
func (e *Error) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Path + ": " + f.Reason
	}
	return "does not match " + e.Type + ": " + strings.Join(parts, "; ")
}
