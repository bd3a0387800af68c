package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/shadowsync/shadowsync/internal/benchfleet"
)

// fleetMemberCommand is bench's hidden subcommand that runs one member of the fleet
// bench: `shadowsync bench fleet-member [flags]`. bench --fleet-processes starts its
// members this way, re-executing its own binary; it is not meant to be typed.
const fleetMemberCommand = "fleet-member"

// runBenchFleetMember parses the flags benchfleet.RunFleet gives a member and runs
// benchfleet.RunMember until ctx ends (SIGTERM or SIGINT) or, with
// --stdin-is-parent, stdin reaches its end.
func runBenchFleetMember(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench "+fleetMemberCommand, stdout)
	var (
		endpoint   = fs.String("endpoint", "", "plain MQTT `URL` of the shadow service")
		group      = fs.String("group", "", "shared-subscription `GROUP` to join")
		prefix     = fs.String("prefix", "", "manage the things whose names start with `P`")
		clientID   = fs.String("client-id", "", "MQTT client `ID`")
		workers    = fs.Int("workers", benchfleet.DefaultMemberWorkers, "MaxConcurrentReconciles")
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
	opts := benchfleet.MemberOptions{
		Endpoint: *endpoint, Group: *group, Prefix: *prefix, ClientID: *clientID, Workers: *workers,
		CPUProfile: *cpuProfile, Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})),
	}
	if *parentPipe {
		opts.Parent = os.Stdin
	}
	return benchfleet.RunMember(ctx, opts, stdout)
}
