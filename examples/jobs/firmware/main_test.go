package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunInstallsFirmwareOnEmbeddedLocalIoT(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	if err := run(t.Context(), []string{"--dir", dir, "--version", "2.0"}, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	for _, want := range []string{"operator: created job firmware-2_0", "checksum ok", "firmware 2.0 installed", "job firmware-2_0 SUCCEEDED"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if v, err := os.ReadFile(filepath.Join(dir, "version")); err != nil || string(v) != "2.0" {
		t.Errorf("flashed version %q, %v", v, err)
	}
}

func TestRunFailsOnBadChecksum(t *testing.T) {
	var out bytes.Buffer
	if err := run(t.Context(), []string{"--corrupt"}, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "FAILED") || !strings.Contains(out.String(), "does not match") {
		t.Errorf("a corrupt image should fail the job:\n%s", out.String())
	}
}

func TestRunRejectsInvalidDocument(t *testing.T) {
	var out bytes.Buffer
	if err := run(t.Context(), []string{"--version", "beta"}, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "REJECTED") || !strings.Contains(out.String(), "/version") {
		t.Errorf("a version outside the schema should be rejected, naming the field:\n%s", out.String())
	}
}

func TestBadFlags(t *testing.T) {
	if err := run(t.Context(), []string{"--cert", "x.pem"}, new(bytes.Buffer)); err == nil || !strings.Contains(err.Error(), "--endpoint") {
		t.Errorf("--cert without --endpoint: %v", err)
	}
}
