package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shadowsync/shadowsync/cmdkit"
)

// runExample runs the example as `go run` would, bounded by 15 s.
func runExample(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	var out strings.Builder
	err := run(ctx, args, &out)
	return out.String(), err
}

func TestRunsAgainstEmbeddedLocaliot(t *testing.T) {
	out, err := runExample(t, "--count", "3")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for i := 1; i <= 3; i++ {
		want := fmt.Sprintf(`received from sdk/test/go: {"message":"Hello World!","sequence":%d}`, i)
		if !strings.Contains(out, want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
	if !strings.Contains(out, "all 3 messages came back") {
		t.Errorf("output:\n%s", out)
	}
}

// With --endpoint the example talks to that broker (here a localiot standing in for
// AWS IoT or `shadowsync serve`) with the flags' client ID and keep-alive.
func TestRunsAgainstAnEndpoint(t *testing.T) {
	broker, err := cmdkit.Open(t.Context(), &cmdkit.Flags{}, cmdkit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()
	out, err := runExample(t, "--endpoint", broker.Endpoint, "--client-id", "pubsub-test", "--keepalive", "30s",
		"--topic", "my/topic", "--message", "hi", "--count", "2")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{
		"connected to " + broker.Endpoint + " as pubsub-test",
		`received from my/topic: {"message":"hi","sequence":2}`,
		"all 2 messages came back",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{{"--count", "0"}, {"--key", "k.pem"}, {"--nope"}} {
		if _, err := runExample(t, args...); !errors.Is(err, cmdkit.ErrUsage) {
			t.Errorf("%q: %v, want a usage error", args, err)
		}
	}
}
