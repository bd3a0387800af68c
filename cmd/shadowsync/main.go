// Command shadowsync is the command-line companion of the shadowsync framework: it
// runs localiot (a local AWS IoT), reads and writes shadows on any endpoint, watches
// their deltas, prints and checks device schemas, and benchmarks the framework.
//
// Usage:
//
//	shadowsync serve   [flags]   run localiot: MQTT broker + Device Shadow service
//	shadowsync get     [flags]   print a shadow
//	shadowsync update  [flags]   update desired or reported state
//	shadowsync delete  [flags]   delete a shadow
//	shadowsync watch   [flags]   stream deltas and documents
//	shadowsync jobs    <create|list|describe|cancel|delete> [flags]
//	                             manage jobs through the control plane's HTTPS API
//	shadowsync schema  [flags]   print a device schema or check a document against it
//	shadowsync bench   [flags]   measure an echo fleet against a bare MQTT client
//	shadowsync help [command]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// command is one subcommand: run parses its own flags from args and executes it.
type command struct {
	name  string
	short string
	run   func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"serve", "run localiot, a local AWS IoT (MQTT broker + Device Shadow service)", runServe},
		{"get", "print a shadow's desired, reported and delta state and its version", runGet},
		{"update", "update a shadow's desired or reported state", runUpdate},
		{"delete", "delete a shadow", runDelete},
		{"watch", "stream a shadow's deltas and documents until interrupted", runWatch},
		{"jobs", "create, list, describe, cancel and delete jobs over the HTTPS control plane (serve --https)", runJobs},
		{"bench", "measure an echo fleet on the framework against a bare MQTT client", runBench},
		{"schema", "print the JSON Schema of a device type; check a desired-state document against it", runSchema},
	}
}

// errUsage marks an error in how the command was called; it exits with status 2.
var errUsage = errors.New("usage")

// errReported marks a failure the command has already reported in its output (with
// --json, on stdout): it exits with status 1 and prints nothing more.
var errReported = errors.New("failure reported in the output")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the command line args and returns the process exit status: 0 on
// success, 1 when the command failed, 2 when it was called wrongly.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		if len(args) > 1 {
			args = []string{args[1], "-h"}
		} else {
			usage(stdout)
			return 0
		}
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, args[1:], stdout, stderr)
		switch {
		case err == nil, errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errReported):
			return 1
		case errors.Is(err, errUsage):
			fmt.Fprintf(stderr, "shadowsync %s: %v\n", c.name, err)
			return 2
		default:
			fmt.Fprintf(stderr, "shadowsync %s: %v\n", c.name, err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "shadowsync: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: shadowsync <command> [flags]")
	fmt.Fprintln(w, "\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.short)
	}
	fmt.Fprintln(w, "\nRun 'shadowsync help <command>' for a command's flags.")
}

// newFlagSet returns a flag set that reports errors instead of exiting, and prints
// its help to stdout.
func newFlagSet(name string, stdout io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("shadowsync "+name, flag.ContinueOnError)
	fs.SetOutput(stdout)
	fs.Usage = func() { // a command with positional arguments sets its own
		fmt.Fprintf(fs.Output(), "Usage: shadowsync %s [flags]\n\nFlags:\n", name)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args into fs, turning a bad flag into a usage error.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	return nil
}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }
