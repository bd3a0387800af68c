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

func runExample(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	var out strings.Builder
	err := run(ctx, args, &out)
	return out.String(), err
}

// Every acknowledgement is reported once, in the order the protocol allows: CONNACK
// before SUBACK, SUBACK before any PUBACK, UNSUBACK last.
func TestReportsEveryAcknowledgement(t *testing.T) {
	out, err := runExample(t, "--count", "4")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	index := func(prefix string) int {
		for i, l := range lines {
			if strings.HasPrefix(l, prefix) {
				return i
			}
		}
		t.Fatalf("no line %q in:\n%s", prefix, out)
		return -1
	}
	connack, suback, unsuback := index("CONNACK: online"), index("SUBACK: subscribed to sdk/test/go/async"), index("UNSUBACK:")
	if !(connack < suback && suback < unsuback && unsuback == len(lines)-1) {
		t.Errorf("acks out of order:\n%s", out)
	}
	for i := 1; i <= 4; i++ {
		if p := index(fmt.Sprintf("PUBACK: message %d", i)); p < suback || p > unsuback {
			t.Errorf("PUBACK %d out of place:\n%s", i, out)
		}
		index(fmt.Sprintf(`message on sdk/test/go/async: {"message":"New Message %d"}`, i))
	}
	if !strings.HasSuffix(lines[len(lines)-1], "4 PUBACKs, 4 messages") {
		t.Errorf("last line %q", lines[len(lines)-1])
	}
}

func TestRunsAgainstAnEndpoint(t *testing.T) {
	broker, err := cmdkit.Open(t.Context(), &cmdkit.Flags{}, cmdkit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()
	out, err := runExample(t, "--endpoint", broker.Endpoint, "--client-id", "async-test", "--topic", "a/b", "--count", "1")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out, "connecting to "+broker.Endpoint+" as async-test") || !strings.Contains(out, "UNSUBACK: unsubscribed from a/b; 1 PUBACKs, 1 messages") {
		t.Errorf("output:\n%s", out)
	}
}

func TestUsage(t *testing.T) {
	if _, err := runExample(t, "--count", "-1"); !errors.Is(err, cmdkit.ErrUsage) {
		t.Errorf("--count -1: %v, want a usage error", err)
	}
}
