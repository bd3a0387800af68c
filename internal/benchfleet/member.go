package benchfleet

import (
	"context"
	"encoding/json"
	"errors"
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

// DefaultMemberWorkers is a member's MaxConcurrentReconciles unless the caller says
// otherwise: the same as reconciler.Echo's fleet use and examples/fleet.
const DefaultMemberWorkers = 16

// readyPrefix and statsPrefix start the lines a member prints on stdout: once it is
// online and subscribed, and as it exits. RunFleet reads them.
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

// MemberOptions configure RunMember, one member process of RunFleet. RunFleet
// starts each member with them as command-line flags appended to
// FleetOptions.Member: --endpoint, --group, --prefix, --client-id, --workers,
// --log-level, --stdin-is-parent and, for a profile, --cpuprofile; that command
// parses them back into MemberOptions.
type MemberOptions struct {
	// Endpoint is the plain MQTT URL of the shadow service. Required.
	Endpoint string
	// Group is the shared-subscription group to join.
	Group string
	// Prefix selects the things managed: those whose names start with it.
	Prefix string
	// ClientID is the member's MQTT client ID.
	ClientID string
	// Workers is the MaxConcurrentReconciles; zero means DefaultMemberWorkers.
	Workers int
	// CPUProfile, when set, names the file that receives a CPU profile of the
	// member's whole life.
	CPUProfile string
	// Parent, when set, is read to its end; the member then stops. It is the pipe
	// from the bench that started it, so that the member stops when the bench has
	// gone, even if killed.
	Parent io.Reader
	// Logger receives the member's logs. Nil discards them.
	Logger *slog.Logger
}

// errNoEndpoint is returned by RunMember without MemberOptions.Endpoint.
var errNoEndpoint = errors.New("benchfleet: member: no endpoint")

// RunMember runs one member of the fleet bench: a fleet echo — the controller of
// examples/fleet — in one shared-subscription group, until ctx ends (for a process,
// SIGTERM or SIGINT) or Parent reaches its end. It prints a ready line on stdout
// once it is online and subscribed, and a stats line as it exits, which RunFleet
// reads.
func RunMember(ctx context.Context, opts MemberOptions, stdout io.Writer) error {
	if opts.Endpoint == "" {
		return errNoEndpoint
	}
	if opts.Workers == 0 {
		opts.Workers = DefaultMemberWorkers
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("member", opts.ClientID)

	mgr, err := reconciler.NewManager(
		transport.Config{Endpoint: opts.Endpoint, ClientID: opts.ClientID, MaxPublishRate: -1},
		reconciler.Options{Logger: log})
	if err != nil {
		return err
	}
	_, err = reconciler.Register(mgr, reconciler.ControllerOptions{
		Name:                    "fleet-echo",
		Fleet:                   &reconciler.Fleet{Prefix: opts.Prefix, Group: opts.Group},
		MaxConcurrentReconciles: opts.Workers,
	}, reconciler.ReconcilerFunc[shadowstate.Object](func(_ context.Context, req reconciler.Request[shadowstate.Object]) (reconciler.Result, error) {
		*req.Reported = shadowstate.Merge(*req.Reported, req.Delta)
		return reconciler.Result{}, nil
	}))
	if err != nil {
		return err
	}
	if opts.CPUProfile != "" {
		f, err := os.Create(opts.CPUProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if opts.Parent != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		go func() {
			_, _ = io.Copy(io.Discard, opts.Parent)
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
	fmt.Fprintf(stdout, "%sgroup %q prefix %q on %s as %s\n", readyPrefix, opts.Group, opts.Prefix, opts.Endpoint, mgr.Conn().ClientID())
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
				if n := l.GetName(); n != "controller" && n != "conn" {
					key = append(key, l.GetValue())
				}
			}
			into[strings.Join(key, " ")] += int(m.GetCounter().GetValue())
		}
	}
	return st
}
