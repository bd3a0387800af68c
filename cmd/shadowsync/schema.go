package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/shadowsync/shadowsync/schemas"
	"github.com/shadowsync/shadowsync/shadowstate"
)

// Thermostat is the device type of examples/thermostat, which lives in a package main
// and cannot be imported. Its fields and tags must stay those of the example:
// TestThermostatSchemaIsTheExamples checks that its schema is byte for byte the
// committed schemas/thermostat.json, which the example's own test keeps up to date.
type Thermostat struct {
	Target float64 `json:"target" jsonschema:"minimum=5,maximum=30,description=target temperature in degrees Celsius"`
	Mode   string  `json:"mode" jsonschema:"enum=off,enum=heat,enum=cool"`
	Temp   float64 `json:"temp,omitempty" jsonschema:"description=measured temperature in degrees Celsius (reported)"`
	Active bool    `json:"active,omitempty" jsonschema:"description=heater or cooler running (reported)"`
}

// deviceTypes are the device types `schema --type` knows, by name. A program's own
// types get their schema from schemas.For in the program (see the thermostat's
// --write-schema); the CLI cannot load Go types.
var deviceTypes = map[string]func() (*schemas.Schema, error){
	"thermostat": func() (*schemas.Schema, error) { return schemas.For[Thermostat](schemas.Options{}) },
}

// docSchema is a schema the command checks documents against: a built-in device
// type's or one read from a file.
type docSchema struct {
	name     string // the Go type's name, or the file's path
	text     []byte // the schema document as printed, indented, ending in a newline
	validate func(doc any) ([]schemas.FieldError, error)
}

// runSchema prints the JSON Schema of a built-in device type or of a schema file,
// and with --validate checks a desired-state document against it.
func runSchema(_ context.Context, args []string, stdout, _ io.Writer) error {
	fs := newFlagSet("schema", stdout)
	typ := fs.String("type", "", "print the schema of built-in device type `NAME` ("+strings.Join(slices.Sorted(maps.Keys(deviceTypes)), ", ")+")")
	docFile := fs.String("validate", "", "check the desired-state document (a JSON object) in `FILE` against the schema; - reads standard input")
	asJSON := fs.Bool("json", false, "print JSON, for scripts")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: shadowsync schema (--type NAME | SCHEMA.json) [--validate DOC.json] [--json]")
		fmt.Fprintln(fs.Output(), "\nPrints the JSON Schema of a device type, or checks and prints a schema file;")
		fmt.Fprintln(fs.Output(), "with --validate, checks a desired-state document against it (exit 1 when it does not match).")
		fs.PrintDefaults()
	}
	positional, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(positional) > 1:
		return fmt.Errorf("%w: unexpected argument %q", errUsage, positional[1])
	case (*typ == "") == (len(positional) == 0):
		return fmt.Errorf("%w: give either --type NAME or a schema file", errUsage)
	}

	var s *docSchema
	if *typ != "" {
		s, err = builtinSchema(*typ)
	} else {
		s, err = fileSchema(positional[0])
	}
	if err != nil {
		return err
	}
	if *docFile == "" {
		if *asJSON {
			var b bytes.Buffer
			if err := json.Compact(&b, s.text); err != nil {
				return err
			}
			b.WriteByte('\n')
			_, err = stdout.Write(b.Bytes())
			return err
		}
		_, err = stdout.Write(s.text)
		return err
	}
	return validateDocument(s, *docFile, *asJSON, stdout)
}

// builtinSchema returns the schema of a device type the CLI knows.
func builtinSchema(name string) (*docSchema, error) {
	derive, ok := deviceTypes[name]
	if !ok {
		return nil, fmt.Errorf("%w: unknown device type %q (known: %s)", errUsage, name, strings.Join(slices.Sorted(maps.Keys(deviceTypes)), ", "))
	}
	s, err := derive()
	if err != nil {
		return nil, err
	}
	return fromSchema(s), nil
}

// fromSchema wraps a compiled schema for the command.
func fromSchema(s *schemas.Schema) *docSchema {
	return &docSchema{
		name: s.Name(),
		text: s.JSON(),
		validate: func(doc any) ([]schemas.FieldError, error) {
			err := s.Validate(doc)
			var se *schemas.Error
			if errors.As(err, &se) {
				return se.Fields, nil
			}
			return nil, err
		},
	}
}

// fileSchema reads a JSON Schema file and compiles it, which also checks it against
// its metaschema (draft 2020-12 unless its $schema says otherwise).
func fileSchema(path string) (*docSchema, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s, err := schemas.Parse(path, data)
	if err != nil {
		return nil, errors.New(strings.TrimPrefix(err.Error(), "schemas: "))
	}
	return fromSchema(s), nil
}

// validation is what `schema --validate --json` prints.
type validation struct {
	Valid    bool         `json:"valid"`
	Schema   string       `json:"schema"`
	Document string       `json:"document"`
	Errors   []fieldError `json:"errors"` // empty when valid
}

// fieldError is one schemas.FieldError in --json output.
type fieldError struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

// validateDocument checks the document in file against s and reports the outcome: a
// line (or JSON) on stdout when it matches, an error naming every offending field when
// it does not.
func validateDocument(s *docSchema, file string, asJSON bool, stdout io.Writer) error {
	var (
		data []byte
		err  error
	)
	if file == "-" {
		data, err = io.ReadAll(stdin)
	} else {
		data, err = os.ReadFile(file)
	}
	if err != nil {
		return fmt.Errorf("read document: %w", err)
	}
	name := file
	if file == "-" {
		name = "standard input"
	}
	var doc any
	var fields []schemas.FieldError
	if err := shadowstate.Unmarshal(data, &doc); err != nil {
		fields = []schemas.FieldError{{Path: "/", Reason: "not JSON: " + err.Error()}}
	} else if fields, err = s.validate(doc); err != nil {
		return err
	}
	slices.SortFunc(fields, func(a, b schemas.FieldError) int {
		return cmp.Or(strings.Compare(a.Path, b.Path), strings.Compare(a.Reason, b.Reason))
	})
	if asJSON {
		v := validation{Valid: len(fields) == 0, Schema: s.name, Document: name, Errors: []fieldError{}}
		for _, f := range fields {
			v.Errors = append(v.Errors, fieldError(f))
		}
		if err := printJSON(stdout, v); err != nil {
			return err
		}
		if len(fields) > 0 {
			return errReported // the JSON says why; stderr stays empty for scripts
		}
	}
	if len(fields) == 0 {
		if !asJSON {
			fmt.Fprintf(stdout, "%s matches %s\n", name, s.name)
		}
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s does not match %s:", name, s.name)
	for _, f := range fields {
		fmt.Fprintf(&b, "\n  %s: %s", f.Path, f.Reason)
	}
	return errors.New(b.String())
}
