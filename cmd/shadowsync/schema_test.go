package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/shadowsync/shadowsync/schemas"
)

// The CLI's copy of the thermostat type gives the committed schema, which the
// example's own test keeps equal to the example's type: the three cannot drift apart.
func TestThermostatSchemaIsTheExamples(t *testing.T) {
	want, err := os.ReadFile("../../schemas/thermostat.json")
	if err != nil {
		t.Fatal(err)
	}
	s, err := schemas.For[Thermostat](schemas.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), string(s.JSON())); diff != "" {
		t.Errorf("cmd/shadowsync's Thermostat differs from schemas/thermostat.json (-committed +cli):\n%s", diff)
	}
	if out := mustCLI(t, "", "schema", "--type", "thermostat"); out != string(want) {
		t.Errorf("schema --type thermostat printed:\n%s\nwant schemas/thermostat.json", out)
	}
}

func TestSchemaPrintsAndChecksFiles(t *testing.T) {
	dir := t.TempDir()
	// A schema file on one line is printed indented, its keys in their order.
	oneLine := filepath.Join(dir, "lamp.json")
	writeSchemaFile(t, oneLine, `{"type":"object","properties":{"on":{"type":"boolean"},"level":{"type":"integer","minimum":0,"maximum":100}},"additionalProperties":false}`)
	want := `{
  "type": "object",
  "properties": {
    "on": {
      "type": "boolean"
    },
    "level": {
      "type": "integer",
      "minimum": 0,
      "maximum": 100
    }
  },
  "additionalProperties": false
}
`
	if out := mustCLI(t, "", "schema", oneLine); out != want {
		t.Errorf("schema FILE printed:\n%s\nwant:\n%s", out, want)
	}
	out := mustCLI(t, "", "schema", "--json", "../../schemas/thermostat.json")
	if strings.Count(out, "\n") != 1 || !json.Valid([]byte(out)) || !strings.Contains(out, `"enum":["off","heat","cool"]`) {
		t.Errorf("schema --json FILE printed %q, want the schema on one line", out)
	}

	notSchema := filepath.Join(dir, "bad.json")
	writeSchemaFile(t, notSchema, `{"type":"object","properties":{"on":{"type":"switch"}}}`)
	code, out, errOut := cli(t, "", "schema", notSchema)
	if code != 1 || out != "" || !strings.Contains(errOut, "bad.json is not a valid JSON Schema") || !strings.Contains(errOut, "/properties/on/type") {
		t.Errorf("schema of an invalid schema: exit %d, stdout %q, stderr:\n%s", code, out, errOut)
	}
	notJSON := filepath.Join(dir, "broken.json")
	writeSchemaFile(t, notJSON, `{"type":`)
	if code, _, errOut := cli(t, "", "schema", notJSON); code != 1 || !strings.Contains(errOut, "broken.json is not JSON") {
		t.Errorf("schema of a broken file: exit %d, stderr:\n%s", code, errOut)
	}
}

func TestSchemaValidate(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	writeSchemaFile(t, good, `{"target": 22.5, "mode": "heat"}`)
	bad := filepath.Join(dir, "bad.json")
	writeSchemaFile(t, bad, `{"target": 45, "mode": "turbo", "colour": "red"}`)
	wantFields := `
  /: additional properties 'colour' not allowed
  /mode: value must be one of 'off', 'heat', 'cool' (found "turbo")
  /target: maximum: got 45, want 30
`
	for name, schema := range map[string][]string{
		"built-in": {"--type", "thermostat"},
		"file":     {"../../schemas/thermostat.json"},
	} {
		t.Run(name, func(t *testing.T) {
			schemaName := "Thermostat"
			if name == "file" {
				schemaName = "../../schemas/thermostat.json"
			}
			args := append([]string{"schema"}, schema...)

			out := mustCLI(t, "", append(args, "--validate", good)...)
			if out != good+" matches "+schemaName+"\n" {
				t.Errorf("valid document: printed %q", out)
			}
			// Standard input, and a flag after the positional argument.
			if out := mustCLI(t, `{"mode":"off"}`, append(args, "--validate", "-")...); out != "standard input matches "+schemaName+"\n" {
				t.Errorf("valid document on stdin: printed %q", out)
			}

			code, out, errOut := cli(t, "", append(args, "--validate", bad)...)
			want := "shadowsync schema: " + bad + " does not match " + schemaName + ":" + wantFields
			if code != 1 || out != "" || errOut != want {
				t.Errorf("invalid document: exit %d, stdout %q, stderr:\n%s\nwant exit 1 and stderr:\n%s", code, out, errOut, want)
			}

			code, out, errOut = cli(t, "", append(args, "--validate", bad, "--json")...)
			var got validation
			if err := json.Unmarshal([]byte(out), &got); err != nil || code != 1 || errOut != "" {
				t.Fatalf("--json: exit %d, %v, stdout %q, stderr %q (want exit 1, JSON, empty stderr)", code, err, out, errOut)
			}
			wantJSON := validation{Valid: false, Schema: schemaName, Document: bad, Errors: []fieldError{
				{"/", "additional properties 'colour' not allowed"},
				{"/mode", `value must be one of 'off', 'heat', 'cool' (found "turbo")`},
				{"/target", "maximum: got 45, want 30"},
			}}
			if diff := cmp.Diff(wantJSON, got); diff != "" {
				t.Errorf("--json (-want +got):\n%s", diff)
			}
			if out := mustCLI(t, "", append(args, "--json", "--validate", good)...); out != `{"valid":true,"schema":"`+schemaName+`","document":"`+good+`","errors":[]}`+"\n" {
				t.Errorf("--json of a valid document: %q", out)
			}

			code, _, errOut = cli(t, "not json", append(args, "--validate", "-")...)
			if code != 1 || !strings.Contains(errOut, "standard input does not match "+schemaName+":\n  /: not JSON") {
				t.Errorf("a document that is not JSON: exit %d, stderr:\n%s", code, errOut)
			}
		})
	}
}

func TestSchemaUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"schema"}, 2, "give either --type NAME or a schema file"},
		{[]string{"schema", "--type", "thermostat", "x.json"}, 2, "give either --type NAME or a schema file"},
		{[]string{"schema", "a.json", "b.json"}, 2, `unexpected argument "b.json"`},
		{[]string{"schema", "--type", "toaster"}, 2, `unknown device type "toaster" (known: thermostat)`},
		{[]string{"schema", "--bogus"}, 2, "flag provided but not defined: -bogus"},
		{[]string{"schema", "no-such-file.json"}, 1, "no-such-file.json"},
		{[]string{"schema", "--type", "thermostat", "--validate", "no-such-doc.json"}, 1, "read document"},
		{[]string{"help", "schema"}, 0, "--type NAME | SCHEMA.json"},
	} {
		code, out := runToEnd(t, nil, tc.args...)
		if code != tc.code || !strings.Contains(out, tc.want) {
			t.Errorf("shadowsync %s: exit %d, output:\n%s\nwant exit %d and %q", strings.Join(tc.args, " "), code, out, tc.code, tc.want)
		}
	}
}

func writeSchemaFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
