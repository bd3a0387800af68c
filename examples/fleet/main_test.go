package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestFleetNeedsAnEndpoint(t *testing.T) {
	err := run(t.Context(), nil, new(bytes.Buffer))
	if err == nil || !strings.Contains(err.Error(), "--endpoint is required") {
		t.Errorf("run without --endpoint: %v", err)
	}
}
