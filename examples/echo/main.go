// Echo is the ThingShadowEcho sample of the AWS IoT Device SDK for Python v1 in one
// line of shadowsync:
// reconciler.Echo mirrors every thing's desired state into its reported state.
//
// With no --endpoint it starts localiot in-process, desires a state for each thing as
// an app would, waits until every thing reports it, and exits:
//
//	go run ./examples/echo --thing-prefix lamp- --count 100
//
// Against AWS IoT (or `shadowsync serve`) it echoes until interrupted:
//
//	go run ./examples/echo --endpoint mqtts://XXXX-ats.iot.eu-west-1.amazonaws.com:8883 \
//	    --ca AmazonRootCA1.pem --cert device.pem.crt --key private.pem.key --thing lamp-1 --thing lamp-2
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/shadowsync/shadowsync/cmdkit"
	"github.com/shadowsync/shadowsync/reconciler"
	"github.com/shadowsync/shadowsync/shadowclient"
	"github.com/shadowsync/shadowsync/shadowstate"
	"github.com/shadowsync/shadowsync/transport"
)

func main() { cmdkit.Main(run) }

// thingList is the repeatable --thing flag.
type thingList []string

func (l *thingList) String() string     { return strings.Join(*l, ",") }
func (l *thingList) Set(v string) error { *l = append(*l, v); return nil }

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("echo", flag.ContinueOnError)
	fs.SetOutput(stdout)
	conn := cmdkit.RegisterFlags(fs, "")
	var things thingList
	fs.Var(&things, "thing", "thing `NAME` to echo (repeatable)")
	prefix := fs.String("thing-prefix", "", "echo the things `P`0 … P(N-1), with --count N")
	count := fs.Int("count", 1, "how many things --thing-prefix names")
	if err := cmdkit.Parse(fs, args); err != nil {
		return err
	}
	if *prefix != "" {
		if *count < 1 {
			return cmdkit.Usagef("--count must be at least 1")
		}
		for i := range *count {
			things = append(things, fmt.Sprintf("%s%d", *prefix, i))
		}
	}
	if len(things) == 0 {
		things = thingList{"echo-1"}
	}
	out := cmdkit.NewPrinter(stdout)
	tgt, err := cmdkit.Open(ctx, conn, cmdkit.Options{Listener: cmdkit.Plain})
	if err != nil {
		return err
	}
	defer tgt.Close()

	cfg := tgt.Config("echo")
	mgr, err := reconciler.NewManager(cfg, reconciler.Options{})
	if err != nil {
		return err
	}
	if _, err := reconciler.Echo(mgr, things...); err != nil { // the one line
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stopped := make(chan error, 1)
	go func() { stopped <- mgr.Start(ctx) }()
	if err := mgr.Conn().AwaitConnection(ctx); err != nil {
		cancel()
		<-stopped // the manager stops before the deferred tgt.Close stops the broker
		return err
	}
	out.Printf("echoing %d thing(s) on %s", len(things), tgt.Endpoint)

	if tgt.Local {
		start := time.Now()
		if err := desireAndWait(ctx, cfg, things); err != nil {
			cancel()
			<-stopped
			return err
		}
		out.Printf("all %d thing(s) report what was desired (%v)", len(things), time.Since(start).Round(time.Millisecond))
		cancel()
	}
	return <-stopped
}

// desireAndWait acts as an app: it desires a state for every thing and waits until
// each one reports it, watching the documents messages.
func desireAndWait(ctx context.Context, cfg transport.Config, things []string) error {
	cfg.ClientID = ""
	conn, err := transport.Dial(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	client, err := shadowclient.New(conn, shadowclient.Options{})
	if err != nil {
		return err
	}
	defer client.Close(context.WithoutCancel(ctx))

	var wg sync.WaitGroup
	errs := make(chan error, len(things))
	sem := make(chan struct{}, 32)
	for i, thing := range things {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			h, err := client.Shadow(thing, "")
			if err != nil {
				errs <- err
				return
			}
			want := map[string]any{"color": []string{"red", "green", "blue"}[i%3], "seq": i}
			echoed := make(chan struct{})
			var once sync.Once
			cancelWatch, err := h.OnDocuments(ctx, func(_ context.Context, d *shadowstate.DocumentsMessage) {
				if shadowstate.Delta(d.Current.State.Desired, d.Current.State.Reported) == nil && d.Current.State.Reported != nil {
					once.Do(func() { close(echoed) })
				}
			})
			if err != nil {
				errs <- err
				return
			}
			defer cancelWatch()
			if _, err := h.UpdateDesired(ctx, want); err != nil {
				errs <- err
				return
			}
			select {
			case <-echoed:
			case <-time.After(30 * time.Second):
				errs <- fmt.Errorf("%s: not echoed within 30s", thing)
			case <-ctx.Done():
				errs <- ctx.Err()
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs // nil when every thing was echoed
}
