// Fleet is an echo service for a whole fleet, meant to run as several processes:
// each manages every thing whose name has --prefix, discovered from the things'
// shadow events, and processes that share a --group split the events between them
// through an MQTT shared subscription. Versioned reports keep them correct when two
// act on one thing; a periodic re-read picks up events lost with a crashed process,
// and with --persistent-session (and a --client-id per process) the broker keeps a
// crashed process's events until it comes back.
//
// Against `shadowsync serve` (or any broker running the localiot shadow service):
//
//	go run ./examples/fleet --endpoint mqtt://127.0.0.1:1883 --prefix lamp- --group echoers
//
// and two more like it in other terminals. Against AWS IoT, the connection's policy
// must allow the wildcard shadow topics; see docs/fleet.md.
package main

import (
	"context"
	"flag"
	"io"
	"time"

	"github.com/shadowsync/shadowsync/cmdkit"
	"github.com/shadowsync/shadowsync/reconciler"
	"github.com/shadowsync/shadowsync/shadowstate"
)

func main() { cmdkit.Main(run) }

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("fleet", flag.ContinueOnError)
	fs.SetOutput(stdout)
	conn := cmdkit.RegisterFlags(fs, "")
	prefix := fs.String("prefix", "", "manage the things whose names start with `P` (default: every thing)")
	group := fs.String("group", "", "share the fleet with the other processes of shared-subscription group `G`")
	workers := fs.Int("workers", 16, "how many shadows to reconcile at once")
	maxShadows := fs.Int("max-shadows", 0, "how many shadows to cache at most (default 100,000)")
	mirror := fs.String("mirror", "", "watch the event copies a shadow service publishes under topic `PREFIX` (for brokers, such as mosquitto 2.0, that never deliver '$' topics to shared subscriptions)")
	resync := fs.Duration("resync", 5*time.Second, "re-read every known shadow this often, to pick up events lost with another process (0 = never)")
	persistent := fs.Bool("persistent-session", false, "keep a persistent session and acknowledge each event only once it is reconciled, so that events survive a crash of this process (needs a --client-id of its own, kept across restarts)")
	maxUnacked := fs.Int("max-unacked", 0, "with --persistent-session, hold at most `N` events unacknowledged (default 64, below AWS IoT's 100 in flight)")
	workTime := fs.Duration("work-time", 0, "spend this long in each reconcile, as a device doing real work would (for demos and tests)")
	if err := cmdkit.Parse(fs, args); err != nil {
		return err
	}
	if conn.Endpoint == "" {
		return cmdkit.Usagef("--endpoint is required: the fleet runs as several processes on one broker")
	}
	out := cmdkit.NewPrinter(stdout)

	if *persistent && conn.ClientID == "" {
		return cmdkit.Usagef("--persistent-session needs --client-id: the broker finds the session by it, so each process needs its own, the same after a restart")
	}
	cfg := conn.Config("")
	cfg.PersistentSession = *persistent
	mgr, err := reconciler.NewManager(cfg, reconciler.Options{Resync: *resync})
	if err != nil {
		return err
	}
	_, err = reconciler.Register(mgr, reconciler.ControllerOptions{
		Name: "fleet-echo",
		Fleet: &reconciler.Fleet{Prefix: *prefix, Group: *group, Mirror: *mirror, MaxShadows: *maxShadows,
			PersistentSession: *persistent, MaxUnacked: *maxUnacked},
		MaxConcurrentReconciles: *workers,
	}, reconciler.ReconcilerFunc[shadowstate.Object](func(ctx context.Context, req reconciler.Request[shadowstate.Object]) (reconciler.Result, error) {
		if *workTime > 0 {
			select {
			case <-time.After(*workTime):
			case <-ctx.Done():
				return reconciler.Result{}, ctx.Err()
			}
		}
		*req.Reported = shadowstate.Merge(*req.Reported, req.Delta)
		return reconciler.Result{}, nil
	}))
	if err != nil {
		return err
	}
	stopped := make(chan error, 1)
	go func() { stopped <- mgr.Start(ctx) }()
	if err := mgr.Conn().AwaitConnection(ctx); err != nil {
		<-stopped
		return err
	}
	out.Printf("ready: fleet %q in group %q on %s as %s", *prefix, *group, conn.Endpoint, mgr.Conn().ClientID())
	return <-stopped
}
