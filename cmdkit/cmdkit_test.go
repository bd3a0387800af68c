package cmdkit_test

import (
	"context"
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/shadowsync/shadowsync/cmdkit"
	"github.com/shadowsync/shadowsync/localiot"
	"github.com/shadowsync/shadowsync/transport"
)

func parse(t *testing.T, args ...string) (*cmdkit.Flags, error) {
	t.Helper()
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f := cmdkit.RegisterFlags(fs, "Bot")
	return f, cmdkit.Parse(fs, args)
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
		if _, err := parse(t, args...); !errors.Is(err, cmdkit.ErrUsage) {
			t.Errorf("%q: %v, want a usage error", args, err)
		}
	}
	if _, err := parse(t, "-h"); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
	f, _ := parse(t, "--cert", "c.pem")
	if _, err := cmdkit.Open(t.Context(), f, cmdkit.Options{}); !errors.Is(err, cmdkit.ErrUsage) || !strings.Contains(err.Error(), "need --endpoint") {
		t.Errorf("--cert without --endpoint: %v", err)
	}
}

// Each embedded listener serves a connection made from the target's Config, and a
// given endpoint is passed through untouched.
func TestOpen(t *testing.T) {
	for name, opts := range map[string]cmdkit.Options{
		"plain":     {},
		"tls-thing": {Listener: cmdkit.TLS, Thing: "Bot"},
		"tls-op":    {Listener: cmdkit.TLS},
		"websocket": {Listener: cmdkit.WebSocket},
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			f, _ := parse(t)
			target, err := cmdkit.Open(ctx, f, opts)
			if err != nil {
				t.Fatal(err)
			}
			if !target.Local || target.Endpoint == "" || target.Server() == nil {
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
	target, err := cmdkit.Open(t.Context(), f, cmdkit.Options{Listener: cmdkit.TLS})
	if err != nil || target.Local || target.Server() != nil || target.Config("x").Endpoint != "mqtt://127.0.0.1:1" || target.Close() != nil {
		t.Errorf("remote target %+v, %v", target, err)
	}
}

func TestPrinterAddsNewlines(t *testing.T) {
	var b strings.Builder
	p := cmdkit.NewPrinter(&b)
	p.Printf("a %d", 1)
	p.Printf("b")
	if b.String() != "a 1\nb\n" {
		t.Errorf("%q", b.String())
	}
}

// Options.Limits reach the embedded localiot: AWS IoT's limits refuse a client ID
// that starts with "$" unless they are off.
func TestOpenLimits(t *testing.T) {
	const id = "$bot"
	for name, tc := range map[string]struct {
		limits localiot.Limits
		ok     bool
	}{
		"aws": {ok: false},
		"off": {limits: localiot.Limits{Off: true}, ok: true},
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			f, _ := parse(t)
			target, err := cmdkit.Open(ctx, f, cmdkit.Options{Limits: tc.limits})
			if err != nil {
				t.Fatal(err)
			}
			defer target.Close()
			cfg := target.Config(id)
			dialCtx, cancelDial := context.WithTimeout(ctx, 2*time.Second)
			defer cancelDial()
			c, err := transport.Dial(dialCtx, cfg)
			if (err == nil) != tc.ok {
				t.Fatalf("dial as %q: %v, want success %v", id, err, tc.ok)
			}
			if c != nil {
				c.Close(ctx)
			}
		})
	}
}

// Close can be called again, and the broker keeps running when the ctx given to Open
// ends, so a program's clients can still disconnect cleanly after a signal.
func TestCloseAfterCallerCancels(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	f, _ := parse(t)
	target, err := cmdkit.Open(ctx, f, cmdkit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	dialCtx, cancelDial := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancelDial()
	c, err := transport.Dial(dialCtx, target.Config("after-cancel"))
	if err != nil {
		t.Fatalf("dial after the caller's ctx ended: %v", err)
	}
	if err := c.Close(dialCtx); err != nil {
		t.Error(err)
	}
	if err := target.Close(); err != nil {
		t.Error(err)
	}
	if err := target.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// --max-publish-rate: unset keeps transport's default (AWS IoT's cap on AWS IoT
// endpoints only), 0 lifts the cap, N caps at N, and anything else is a usage error
// naming the flag.
func TestMaxPublishRateFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want float64
	}{
		{nil, 0},
		{[]string{"--max-publish-rate", "0"}, -1},
		{[]string{"--max-publish-rate", "250"}, 250},
		{[]string{"--max-publish-rate=0.5"}, 0.5},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		f := cmdkit.RegisterFlags(fs, "")
		if err := cmdkit.Parse(fs, tc.args); err != nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		if got := f.Config("id").MaxPublishRate; got != tc.want {
			t.Errorf("%q: MaxPublishRate = %v, want %v", tc.args, got, tc.want)
		}
	}
	for _, bad := range []string{"-1", "fast", "NaN", "+Inf"} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		cmdkit.RegisterFlags(fs, "")
		err := cmdkit.Parse(fs, []string{"--max-publish-rate", bad})
		if !errors.Is(err, cmdkit.ErrUsage) || !strings.Contains(err.Error(), "max-publish-rate") {
			t.Errorf("--max-publish-rate %s: %v, want a usage error naming the flag", bad, err)
		}
	}
}
