package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunConvergesOnEmbeddedLocalIoT(t *testing.T) {
	var out bytes.Buffer
	if err := run(t.Context(), []string{"--step-every", "20ms"}, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	text := out.String()
	for _, want := range []string{
		"app: desired 22.5°C, heat",
		"thermostat-1: 20.0°C -> 20.5°C",
		"thermostat-1: 22.0°C -> 22.5°C",
		"converged",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
}

func TestCommittedSchemaIsCurrent(t *testing.T) {
	fresh := filepath.Join(t.TempDir(), "thermostat.json")
	if err := run(t.Context(), []string{"--write-schema", fresh}, new(bytes.Buffer)); err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(fresh)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("../../schemas/thermostat.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("schemas/thermostat.json is out of date: run go generate ./...")
	}
}

func TestBadFlags(t *testing.T) {
	if err := run(t.Context(), []string{"--cert", "x.pem"}, new(bytes.Buffer)); err == nil || !strings.Contains(err.Error(), "--endpoint") {
		t.Errorf("--cert without --endpoint: %v", err)
	}
}

func TestRunModeOffConverges(t *testing.T) {
	var out bytes.Buffer
	if err := run(t.Context(), []string{"--set-target", "18", "--set-mode", "off", "--step-every", "20ms"}, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "at 20.0°C, off idle") || !strings.Contains(out.String(), "converged") {
		t.Errorf("a thermostat switched off should stay at 20°C and be done:\n%s", out.String())
	}
}
