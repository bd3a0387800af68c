package main

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shadowsync/shadowsync/cmdkit"
	"github.com/shadowsync/shadowsync/discovery"
	"github.com/shadowsync/shadowsync/localiot"
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
	out, err := runExample(t)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{
		"discovered core " + localiot.DefaultDiscoveryCoreARN + " in group " + localiot.DefaultDiscoveryGroupID,
		"connected to core " + localiot.DefaultDiscoveryCoreARN,
		`received from sdk/test/go: {"message":"Hello World!","sequence":3}`,
		"all 3 messages came back through the core",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
}

// startServer runs a localiot as `shadowsync serve --mqtts --discovery --thing dev`
// would, with its certificates in a directory, standing in for AWS.
func startServer(t *testing.T) (dir string, eps localiot.Endpoints) {
	t.Helper()
	dir = t.TempDir()
	certs, err := localiot.EnsureCerts(dir, "dev")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := localiot.New(localiot.Options{TLS: certs.TLSListener(""), Discovery: certs.DiscoveryListener(""), ThingTopics: []string{"my/${thing}/#"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Start(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-srv.Ready():
	case err := <-done:
		t.Fatal(err)
	case <-time.After(10 * time.Second):
		t.Fatal("localiot did not start")
	}
	return dir, srv.Endpoints()
}

// With --endpoint and credential files the example runs against that endpoint.
func TestRunsAgainstAnEndpoint(t *testing.T) {
	dir, eps := startServer(t)
	args := []string{"--endpoint", eps.Discovery, "--ca", filepath.Join(dir, "ca.pem"),
		"--cert", filepath.Join(dir, "dev.pem"), "--key", filepath.Join(dir, "dev.key"), "--thing", "dev"}
	out, err := runExample(t, append(args, "--topic", "my/dev/topic", "--count", "2", "--message", "hi")...)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{
		"connected to core " + localiot.DefaultDiscoveryCoreARN + " of group " + localiot.DefaultDiscoveryGroupID + " at " + eps.TLS + " as dev",
		`received from my/dev/topic: {"message":"hi","sequence":2}`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}

	out, err = runExample(t, append(args, "--discover-only")...)
	if err != nil || !strings.Contains(out, `{"GGGroups":[{"GGGroupId":"localiot"`) {
		t.Errorf("--discover-only: %v\n%s", err, out)
	}

	// A refused discovery is final: no retries.
	args[len(args)-1] = "someone-else"
	out, err = runExample(t, args...)
	if !errors.Is(err, discovery.ErrUnauthorized) || strings.Contains(out, "retrying") {
		t.Errorf("another thing: %v\n%s", err, out)
	}
}

// A time-out is retried, --retries times in all.
func TestRetriesTimeouts(t *testing.T) {
	dir, _ := startServer(t)
	ln := blackhole(t)
	out, err := runExample(t, "--endpoint", ln, "--ca", filepath.Join(dir, "ca.pem"),
		"--cert", filepath.Join(dir, "dev.pem"), "--key", filepath.Join(dir, "dev.key"), "--thing", "dev",
		"--timeout", "100ms", "--retries", "2")
	if !errors.Is(err, discovery.ErrTimeout) || strings.Count(out, "retrying") != 1 {
		t.Errorf("%v\n%s", err, out)
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{{"--count", "0"}, {"--retries", "0"}, {"--key", "k.pem"}, {"--endpoint", "h"}, {"--nope"}, {"x"}} {
		if _, err := runExample(t, args...); !errors.Is(err, cmdkit.ErrUsage) {
			t.Errorf("%q: %v, want a usage error", args, err)
		}
	}
	if _, err := runExample(t, "--endpoint", "h", "--cert", "c", "--key", "k", "--thing", "a/b"); !errors.Is(err, discovery.ErrInvalidConfig) {
		t.Errorf("bad thing name: %v", err)
	}
}

// blackhole returns the address of a listener that accepts connections and never
// says anything, closed when the test ends.
func blackhole(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				for _, c := range conns {
					c.Close()
				}
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}
