package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestRunExecutesEveryJobOnEmbeddedLocalIoT(t *testing.T) {
	var out bytes.Buffer
	if err := run(t.Context(), []string{"--jobs", "3"}, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	text := out.String()
	for _, want := range []string{
		"pending: 0 in progress, 3 queued",
		`executing job sample-job-1: {"message":"hello from job 1","operation":"print"}`,
		"job sample-job-3 SUCCEEDED",
		"no more jobs: 3 executed",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
	if strings.Index(text, "sample-job-1 SUCCEEDED") > strings.Index(text, "sample-job-2 SUCCEEDED") {
		t.Errorf("jobs out of order:\n%s", text)
	}
}

func TestBadFlags(t *testing.T) {
	if err := run(t.Context(), []string{"--key", "x.pem"}, new(bytes.Buffer)); err == nil || !strings.Contains(err.Error(), "--endpoint") {
		t.Errorf("--key without --endpoint: %v", err)
	}
}
