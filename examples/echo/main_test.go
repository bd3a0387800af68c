package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestEchoManyThingsOnEmbeddedLocalIoT(t *testing.T) {
	var out bytes.Buffer
	if err := run(t.Context(), []string{"--thing-prefix", "lamp-", "--count", "50"}, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "all 50 thing(s) report what was desired") {
		t.Errorf("output:\n%s", out.String())
	}
}

func TestEchoNamedThings(t *testing.T) {
	var out bytes.Buffer
	if err := run(t.Context(), []string{"--thing", "a-1", "--thing", "b-2"}, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "echoing 2 thing(s)") {
		t.Errorf("output:\n%s", out.String())
	}
}

func TestEchoBadFlags(t *testing.T) {
	if err := run(t.Context(), []string{"--thing-prefix", "x", "--count", "0"}, new(bytes.Buffer)); err == nil {
		t.Error("--count 0 accepted")
	}
}
