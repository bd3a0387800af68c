package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"text/tabwriter"

	"github.com/shadowsync/shadowsync/internal/benchfleet"
)

// runBenchPool measures the framework alone on a connection pool (--pool, and with
// --aws-limits under AWS IoT's per-connection quota) and prints its rate against the
// rate the quota allows.
func runBenchPool(ctx context.Context, opts benchfleet.Options, inProcess bool, dropped *dropCounter, jsonOnly bool, stdout io.Writer) error {
	rep, err := benchfleet.RunPool(ctx, opts)
	if err != nil {
		return err
	}
	if inProcess {
		rep.Endpoint = "localiot in process (" + rep.Endpoint + ")"
		rep.ServerDropped = dropped.n.Load()
	}
	if !jsonOnly {
		printPoolTable(stdout, rep)
	}
	line, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s\n", line)
	return err
}

// printPoolTable prints a pool report as a table.
func printPoolTable(w io.Writer, r *benchfleet.PoolReport) {
	limits := "no publish quota"
	if r.AWSLimits {
		limits = fmt.Sprintf("AWS IoT's 100 publishes/s per connection (framework capped at %g/s)", r.MaxPublishRate)
	}
	sharing := ""
	if r.Unshared {
		sharing = " (unshared)"
	}
	fmt.Fprintf(w, "shadowsync bench: %d things on a pool of %d connection(s)%s, %d rounds, %d worker(s), %s, GOMAXPROCS %d\nserver: %s\n\n",
		r.Things, r.Pool, sharing, r.Rounds, r.Workers, limits, r.GOMAXPROCS, r.Endpoint)
	fw := r.Framework
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\tframework\t")
	row := func(name, v string) { fmt.Fprintf(tw, "%s\t%s\t\n", name, v) }
	row("updates/s", fmt.Sprintf("%.0f", fw.UpdatesPerSec))
	if r.QuotaLimitedPerSec > 0 {
		row("quota-limited rate", fmt.Sprintf("%.0f", r.QuotaLimitedPerSec))
		row("of the quota", fmt.Sprintf("%.0f %%", 100*fw.UpdatesPerSec/r.QuotaLimitedPerSec))
	}
	row("p50 latency", msString(fw.P50Ms))
	row("p99 latency", msString(fw.P99Ms))
	row("CPU per update", fmt.Sprintf("%.1f µs", fw.CPUPerUpdateUs))
	row("messages in / update", fmt.Sprintf("%.2f", fw.ReceivedPerUpdate))
	row("messages out / update", fmt.Sprintf("%.2f", fw.PublishedPerUpdate))
	row("publishes throttled", fmt.Sprintf("%d", fw.Throttled))
	if r.ServerDropped >= 0 {
		row("server dropped", fmt.Sprintf("%d", r.ServerDropped))
	}
	row("start to warm", fmt.Sprintf("%.2f s", fw.StartSeconds))
	tw.Flush()
}

// dropCounter counts the publishes and subscriptions localiot drops or refuses (its
// log lines for them; throttled publishes are logged at Debug) and passes every
// record on to next when next wants it.
type dropCounter struct {
	next slog.Handler
	n    *atomic.Int64 // shared by the handlers WithAttrs and WithGroup derive
}

func (d *dropCounter) Enabled(context.Context, slog.Level) bool { return true }

func (d *dropCounter) Handle(ctx context.Context, r slog.Record) error {
	if strings.HasPrefix(r.Message, "publish dropped") || strings.HasPrefix(r.Message, "subscribe refused") {
		d.n.Add(1)
	}
	if d.next.Enabled(ctx, r.Level) {
		return d.next.Handle(ctx, r)
	}
	return nil
}

func (d *dropCounter) WithAttrs(as []slog.Attr) slog.Handler {
	return &dropCounter{next: d.next.WithAttrs(as), n: d.n}
}

func (d *dropCounter) WithGroup(name string) slog.Handler {
	return &dropCounter{next: d.next.WithGroup(name), n: d.n}
}
