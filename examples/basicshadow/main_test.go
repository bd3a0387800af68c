package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shadowsync/shadowsync/cmdkit"
	"github.com/shadowsync/shadowsync/internal/testserver"
	"github.com/shadowsync/shadowsync/localiot"
)

func runExample(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	var out strings.Builder
	err := run(ctx, args, &out)
	return out.String(), err
}

func TestBothRolesOnEmbeddedLocaliot(t *testing.T) {
	out, err := runExample(t, "--count", "3", "--interval", "0")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for i := 1; i <= 3; i++ {
		for _, want := range []string{
			fmt.Sprintf(`updater: desired {"property":%d} accepted at version %d`, i, 2*i-1),
			fmt.Sprintf(`listener: delta {"property":%d} at version %d`, i, 2*i-1),
			fmt.Sprintf(`listener: reported {"property":%d}, now at version %d`, i, 2*i),
		} {
			if !strings.Contains(out, want) {
				t.Errorf("no %q in:\n%s", want, out)
			}
		}
	}
	if !strings.HasSuffix(out, "updater: shadow at version 6, in sync: true\n") {
		t.Errorf("output does not end in sync:\n%s", out)
	}
}

// notifyWriter collects output and closes seen once a line containing want is written.
type notifyWriter struct {
	mu   sync.Mutex
	b    strings.Builder
	want string
	seen chan struct{}
}

func (w *notifyWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b.Write(p)
	if w.seen != nil && strings.Contains(string(p), w.want) {
		close(w.seen)
		w.seen = nil
	}
	return len(p), nil
}

func (w *notifyWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// The two roles as two programs against one endpoint over mutual TLS with the
// thing's certificate files, as against AWS IoT: a delta set while no listener runs
// is picked up when it starts, and a delta set while it runs arrives as it happens.
func TestListenerAndUpdaterAgainstAnEndpoint(t *testing.T) {
	dir := t.TempDir()
	certs, err := localiot.EnsureCerts(dir, "Lamp-1")
	if err != nil {
		t.Fatal(err)
	}
	iot := testserver.Start(t, localiot.Options{TLS: certs.TLSListener("")})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	common := []string{"--endpoint", iot.Endpoints().TLS, "--thing", "Lamp-1", "--ca", filepath.Join(dir, "ca.pem"),
		"--cert", filepath.Join(dir, "Lamp-1.pem"), "--key", filepath.Join(dir, "Lamp-1.key"), "--keepalive", "30s", "--count", "1"}
	// Each role connects with a client ID of the thing's own, as the usual AWS IoT
	// policy (and localiot) requires of a thing's certificate.
	role := func(mode string, w *notifyWriter, more ...string) error {
		return run(ctx, append(append([]string{"--mode", mode, "--client-id", "Lamp-1@" + mode}, common...), more...), w)
	}

	// Desired set with no listener running...
	upd := &notifyWriter{}
	if err := role("updater", upd); err != nil {
		t.Fatalf("updater: %v\n%s", err, upd)
	}
	// ...is found by the listener when it starts.
	lis := &notifyWriter{}
	if err := role("listener", lis); err != nil {
		t.Fatalf("listener: %v\n%s", err, lis)
	}
	if !strings.Contains(lis.String(), `listener: pending delta {"property":1} at version 1`) ||
		!strings.Contains(lis.String(), `listener: reported {"property":1}, now at version 2`) {
		t.Errorf("listener output:\n%s", lis)
	}

	// A listener that is running gets the delta as it happens. The updater's first
	// update (property 1) is already reported and causes no delta; the second does.
	lis = &notifyWriter{want: "waiting for deltas of Lamp-1", seen: make(chan struct{})}
	seen := lis.seen
	listened := make(chan error, 1)
	go func() { listened <- role("listener", lis) }()
	select {
	case <-seen:
	case err := <-listened:
		t.Fatalf("listener ended early: %v\n%s", err, lis)
	case <-ctx.Done():
		t.Fatalf("listener not ready:\n%s", lis)
	}
	upd = &notifyWriter{}
	if err := role("updater", upd, "--count", "2", "--interval", "0"); err != nil {
		t.Fatalf("updater: %v\n%s", err, upd)
	}
	select {
	case err := <-listened:
		if err != nil {
			t.Fatalf("listener: %v\n%s", err, lis)
		}
	case <-ctx.Done():
		t.Fatalf("listener did not finish:\n%s", lis)
	}
	if !strings.Contains(lis.String(), `listener: delta {"property":2} at version 4`) ||
		!strings.Contains(lis.String(), `listener: reported {"property":2}, now at version 5`) ||
		strings.Contains(lis.String(), "pending") {
		t.Errorf("listener output:\n%s", lis)
	}
	if !strings.Contains(upd.String(), `updater: desired {"property":2} accepted at version 4`) {
		t.Errorf("updater output:\n%s", upd)
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{
		{"--mode", "sideways"},
		{"--mode", "listener"}, // needs --endpoint
		{"--count", "0"},
		{"--thing", "bad name"},
	} {
		if _, err := runExample(t, args...); !errors.Is(err, cmdkit.ErrUsage) {
			t.Errorf("%q: %v, want a usage error", args, err)
		}
	}
}
