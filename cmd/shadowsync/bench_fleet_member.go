package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"strings"

	"github.com/shadowsync/shadowsync/reconciler"
	"github.com/shadowsync/shadowsync/shadowstate"
	"github.com/shadowsync/shadowsync/transport"
)

// fleetMemberCommand is bench's hidden subcommand that runs one member of the fleet
// bench: `shadowsync bench fleet-member [flags]`. bench --fleet-processes starts its
// members this way, from its own binary; it is not meant to be typed.
const fleetMemberCommand = "fleet-member"

// readyPrefix and statsPrefix start the lines a member prints on stdout: once it is
// online and subscribed, and as it exits.
const (
	readyPrefix = "ready: "
	statsPrefix = "stats: "
)

// memberStats is what a member prints as it exits: its reconciles by result and its
// shadow requests by operation and outcome ("update rejected"), over its whole life.
type memberStats struct {
	Reconciles map[string]int `json:"reconciles"`
	Requests   map[string]int `json:"requests"`
}

// runBenchFleetMember runs a fleet echo — the controller of examples/fleet — in one
// shared-subscription group until ctx ends (SIGTERM or SIGINT), printing a ready line
// once it is subscribed and a stats line as it exits.
func runBenchFleetMember(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench "+fleetMemberCommand, stdout)
	var (
		endpoint   = fs.String("endpoint", "", "plain MQTT `URL` of the shadow service")
		group      = fs.String("group", "", "shared-subscription `GROUP` to join")
		prefix     = fs.String("prefix", "", "manage the things whose names start with `P`")
		clientID   = fs.String("client-id", "", "MQTT client `ID`")
		workers    = fs.Int("workers", 16, "MaxConcurrentReconciles")
		cpuProfile = fs.String("cpuprofile", "", "write a CPU profile of this member's whole life to `FILE`")
		logLevel   = fs.String("log-level", "warn", "log `LEVEL` on stderr")
		parentPipe = fs.Bool("stdin-is-parent", false, "exit when stdin reaches its end: the bench that started this member has gone, even if killed")
	)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *endpoint == "" || *workers < 1 {
		return fmt.Errorf("%w: --endpoint is required and --workers must be at least 1", errUsage)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("%w: --log-level %q", errUsage, *logLevel)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})).With("member", *clientID)

	mgr, err := reconciler.NewManager(
		transport.Config{Endpoint: *endpoint, ClientID: *clientID, MaxPublishRate: -1},
		reconciler.Options{Logger: log})
	if err != nil {
		return err
	}
	_, err = reconciler.Register(mgr, reconciler.ControllerOptions{
		Name:                    "fleet-echo",
		Fleet:                   &reconciler.Fleet{Prefix: *prefix, Group: *group},
		MaxConcurrentReconciles: *workers,
	}, reconciler.ReconcilerFunc[shadowstate.Object](func(_ context.Context, req reconciler.Request[shadowstate.Object]) (reconciler.Result, error) {
		*req.Reported = shadowstate.Merge(*req.Reported, req.Delta)
		return reconciler.Result{}, nil
	}))
	if err != nil {
		return err
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if *parentPipe {
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			log.Warn("stdin closed: the bench has gone; stopping")
			cancel()
		}()
	}
	stopped := make(chan error, 1)
	go func() { stopped <- mgr.Start(ctx) }()
	// Online means connected and every subscription acknowledged.
	if err := mgr.Conn().AwaitConnection(ctx); err != nil {
		<-stopped
		return err
	}
	fmt.Fprintf(stdout, "%sgroup %q prefix %q on %s as %s\n", readyPrefix, *group, *prefix, *endpoint, mgr.Conn().ClientID())
	if err := <-stopped; err != nil {
		return err
	}
	line, err := json.Marshal(gatherMemberStats(mgr, log))
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s%s\n", statsPrefix, line)
	return err
}

// gatherMemberStats reads the manager's reconcile and request counters.
func gatherMemberStats(mgr *reconciler.Manager, log *slog.Logger) memberStats {
	st := memberStats{Reconciles: map[string]int{}, Requests: map[string]int{}}
	families, err := mgr.Registry().Gather()
	if err != nil {
		log.Warn("gathering metrics", "error", err)
	}
	for _, f := range families {
		var into map[string]int
		switch f.GetName() {
		case "shadowsync_reconciles_total":
			into = st.Reconciles
		case "shadowsync_shadow_requests_total":
			into = st.Requests
		default:
			continue
		}
		for _, m := range f.GetMetric() {
			var key []string
			for _, l := range m.GetLabel() {
				if l.GetName() != "controller" {
					key = append(key, l.GetValue())
				}
			}
			into[strings.Join(key, " ")] += int(m.GetCounter().GetValue())
		}
	}
	return st
}
