// Basicshadow is the basicShadow sample pair of the AWS IoT Device SDK for Python v1,
// in Go: an updater that sets the desired state of a thing's shadow in a loop, and a
// delta listener that receives each resulting delta and reports the state back,
// bringing the shadow in sync.
//
// The Python sample (samples/basicShadow/basicShadowUpdater.py and
// basicShadowDeltaListener.py of the AWS IoT Device SDK for Python v1) is two scripts
// with shadowUpdate and shadowRegisterDeltaCallback; here they are one program with
// --mode updater, listener or both, using shadowstate's Handle.UpdateDesired,
// OnDelta and UpdateReported. Unlike the Python listener, this one also reads the
// shadow when it starts, so a delta set while it was away is not missed.
//
// Without --endpoint both roles run in one process against an embedded localiot,
// over mutual TLS with the thing's own certificate (which may use only its shadow):
//
//	go run ./examples/basicshadow
//
// Against AWS IoT, run the listener and then the updater, e.g. in two terminals:
//
//	go run ./examples/basicshadow --mode listener --endpoint mqtts://XXXX-ats.iot.eu-west-1.amazonaws.com:8883 \
//	    --ca AmazonRootCA1.pem --cert device.pem.crt --key private.pem.key --thing Bot
//	go run ./examples/basicshadow --mode updater --endpoint ... (same flags)
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/shadowsync/shadowsync/cmdkit"
	"github.com/shadowsync/shadowsync/shadowclient"
	"github.com/shadowsync/shadowsync/shadowstate"
	"github.com/shadowsync/shadowsync/transport"
)

func main() { cmdkit.Main(run) }

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("basicshadow", flag.ContinueOnError)
	fs.SetOutput(stdout)
	flags := cmdkit.RegisterFlags(fs, "Bot")
	mode := fs.String("mode", "both", "`MODE`: updater, listener, or both in one process")
	count := fs.Int("count", 5, "desired updates the updater makes, and deltas the listener reports before it exits")
	interval := fs.Duration("interval", 500*time.Millisecond, "pause between the updater's updates")
	if err := cmdkit.Parse(fs, args); err != nil {
		return err
	}
	switch {
	case *mode != "both" && *mode != "updater" && *mode != "listener":
		return cmdkit.Usagef("--mode %q: want updater, listener or both", *mode)
	case *mode != "both" && flags.Endpoint == "":
		return cmdkit.Usagef("--mode %s needs --endpoint; without it both roles share an embedded localiot", *mode)
	case *count < 1:
		return cmdkit.Usagef("--count must be at least 1")
	}
	if err := (shadowstate.ID{Thing: flags.Thing}).Validate(); err != nil {
		return cmdkit.Usagef("--thing: %v", err)
	}
	out := cmdkit.NewPrinter(stdout)
	target, err := cmdkit.Open(ctx, flags, cmdkit.Options{Listener: cmdkit.TLS, Thing: flags.Thing})
	if err != nil {
		return err
	}
	defer target.Close()
	shadow := func(role, clientID string) (*shadowclient.Handle, func(), error) {
		cfg := target.Config(clientID)
		if *mode == "both" && flags.ClientID != "" {
			cfg.ClientID += "@" + role // two connections: one client ID each, both the thing's on localiot
		}
		conn, err := transport.Dial(ctx, cfg)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", role, err)
		}
		client, _ := shadowclient.New(conn, shadowclient.Options{})
		h, err := client.Shadow(flags.Thing, "")
		closeAll := func() { client.Close(context.WithoutCancel(ctx)); conn.Close(context.WithoutCancel(ctx)) }
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		out.Printf("%s: connected to %s as %s", role, target.Endpoint, conn.ClientID())
		return h, closeAll, nil
	}

	reported := make(chan string, *count+1) // the property value of each report
	if *mode != "updater" {
		h, closeListener, err := shadow("listener", "basicShadowDeltaListener")
		if err != nil {
			return err
		}
		defer closeListener()
		if err := listen(ctx, out, h, reported); err != nil {
			return err
		}
	}
	if *mode == "listener" {
		for range *count {
			select {
			case <-reported:
			case <-ctx.Done():
				return nil // interrupted: the Python listener also runs until Ctrl-C
			}
		}
		return nil
	}
	h, closeUpdater, err := shadow("updater", "basicShadowUpdater")
	if err != nil {
		return err
	}
	defer closeUpdater()
	for i := 1; i <= *count; i++ {
		acc, err := h.UpdateDesired(ctx, map[string]int{"property": i})
		if err != nil {
			return fmt.Errorf("updater: %w", err)
		}
		out.Printf("updater: desired {\"property\":%d} accepted at version %d", i, acc.Version)
		if *mode == "both" { // wait for the listener to catch up before the next one
			if err := awaitReport(ctx, reported, fmt.Sprint(i)); err != nil {
				return err
			}
		}
		if i == *count {
			break
		}
		select {
		case <-time.After(*interval):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if *mode == "both" {
		doc, err := h.Get(ctx)
		if err != nil {
			return fmt.Errorf("updater: %w", err)
		}
		out.Printf("updater: shadow at version %d, in sync: %t", doc.Version, len(doc.State.Delta) == 0)
	}
	return nil
}
