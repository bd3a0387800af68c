package exampleflags_test

import (
	"context"
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/shadowsync/shadowsync/examples/internal/exampleflags"
	"github.com/shadowsync/shadowsync/transport"
)

func parse(t *testing.T, args ...string) (*exampleflags.Flags, error) {
	t.Helper()
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f := exampleflags.Register(fs, "Bot")
	return f, exampleflags.Parse(fs, args)
}

func TestFlagsMakeTheTransportConfig(t *testing.T) {
	f, err := parse(t, "--endpoint", "mqtts://h:8883", "--ca", "ca.pem", "--cert", "c.pem", "--key", "k.pem",
		"--client-id", "me", "--region", "eu-west-1", "--keepalive", "45s", "--thing", "Lamp")
	if err != nil {
		t.Fatal(err)
	}
	got := f.Config("default-id")
	want := transport.Config{Endpoint: "mqtts://h:8883", CAFile: "ca.pem", CertFile: "c.pem", KeyFile: "k.pem",
		ClientID: "me", Region: "eu-west-1", KeepAlive: 45 * time.Second}
	if got.Endpoint != want.Endpoint || got.CAFile != want.CAFile || got.CertFile != want.CertFile || got.KeyFile != want.KeyFile ||
		got.ClientID != want.ClientID || got.Region != want.Region || got.KeepAlive != want.KeepAlive || f.Thing != "Lamp" {
		t.Errorf("config %+v, thing %q", got, f.Thing)
	}
	if f, _ := parse(t); f.Config("default-id").ClientID != "default-id" || f.Thing != "Bot" {
		t.Errorf("defaults: client ID %q, thing %q", f.Config("default-id").ClientID, f.Thing)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{"--bogus"}, {"extra"}, {"--keepalive", "soon"}} {
		if _, err := parse(t, args...); !errors.Is(err, exampleflags.ErrUsage) {
			t.Errorf("%q: %v, want a usage error", args, err)
		}
	}
	if _, err := parse(t, "-h"); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
	f, _ := parse(t, "--cert", "c.pem")
	if _, err := exampleflags.Open(t.Context(), f, exampleflags.Options{}); !errors.Is(err, exampleflags.ErrUsage) || !strings.Contains(err.Error(), "need --endpoint") {
		t.Errorf("--cert without --endpoint: %v", err)
	}
}

// Each embedded listener serves a connection made from the target's Config, and a
// given endpoint is passed through untouched.
func TestOpen(t *testing.T) {
	for name, opts := range map[string]exampleflags.Options{
		"plain":     {},
		"tls-thing": {Listener: exampleflags.TLS, Thing: "Bot"},
		"tls-op":    {Listener: exampleflags.TLS},
		"websocket": {Listener: exampleflags.WebSocket},
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			f, _ := parse(t)
			target, err := exampleflags.Open(ctx, f, opts)
			if err != nil {
				t.Fatal(err)
			}
			if !target.Local || target.Endpoint == "" {
				t.Fatalf("target %+v", target)
			}
			c, err := transport.Dial(ctx, target.Config("test-"+name))
			if err != nil {
				t.Fatal(err)
			}
			want := "test-" + name
			if opts.Thing != "" {
				want = opts.Thing + "@" + want // a thing's certificate needs a client ID of its own
			}
			if c.ClientID() != want {
				t.Errorf("client ID %q, want %q", c.ClientID(), want)
			}
			if err := c.Close(ctx); err != nil {
				t.Error(err)
			}
			if err := target.Close(); err != nil {
				t.Error(err)
			}
		})
	}

	f, _ := parse(t, "--endpoint", "mqtt://127.0.0.1:1")
	target, err := exampleflags.Open(t.Context(), f, exampleflags.Options{Listener: exampleflags.TLS})
	if err != nil || target.Local || target.Config("x").Endpoint != "mqtt://127.0.0.1:1" || target.Close() != nil {
		t.Errorf("remote target %+v, %v", target, err)
	}
}

func TestPrinterAddsNewlines(t *testing.T) {
	var b strings.Builder
	p := exampleflags.NewPrinter(&b)
	p.Printf("a %d", 1)
	p.Printf("b")
	if b.String() != "a 1\nb\n" {
		t.Errorf("%q", b.String())
	}
}
