// Package cmdkit is the plumbing of a shadowsync program: connection flags named as
// AWS's samples, the choice between AWS IoT and an embedded localiot, main's exit
// codes. It keeps a device program's main.go about its device.
//
// A program registers the connection flags, parses them, and opens its Target: the
// broker given with --endpoint (AWS IoT, or `shadowsync serve`), or — with no
// --endpoint — a localiot started inside the program on an ephemeral loopback port, so
// the same binary runs on a laptop with no flags and on AWS IoT with the flags of
// AWS's samples (--endpoint, --ca, --cert, --key, --client-id, --thing):
//
//	func main() { cmdkit.Main(run) }
//
//	func run(ctx context.Context, args []string, stdout io.Writer) error {
//		fs := flag.NewFlagSet("light", flag.ContinueOnError)
//		conn := cmdkit.RegisterFlags(fs, "light-1")
//		if err := cmdkit.Parse(fs, args); err != nil {
//			return err
//		}
//		target, err := cmdkit.Open(ctx, conn, cmdkit.Options{})
//		if err != nil {
//			return err
//		}
//		defer target.Close() // after everything below has disconnected
//		mgr, err := reconciler.NewManager(target.Config("light"), reconciler.Options{})
//		// ... register controllers, then:
//		return mgr.Start(ctx)
//	}
//
// The examples of this repository are written this way, as is the program of
// docs/getting-started.md ("In your own module").
package cmdkit

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/shadowsync/shadowsync/transport"
)

// Flags are the connection flags RegisterFlags defines, named as the options of the
// AWS IoT Device SDK samples are spelled out (-e endpoint, -r root CA, -c certificate,
// -k key), so a program's instructions for AWS IoT read like AWS's.
type Flags struct {
	// Endpoint is the broker URL (mqtts://host:8883, mqtts://host:443,
	// wss://host/mqtt, mqtt://127.0.0.1:1883). Empty runs against an embedded localiot.
	Endpoint string
	// CAFile, CertFile and KeyFile are the root CA, the device certificate and its
	// private key, in PEM.
	CAFile, CertFile, KeyFile string
	// ClientID is the MQTT client ID; empty means the program's default, the
	// clientID given to Config.
	ClientID string
	// Region is the AWS region for SigV4 (WebSocket); empty means the region in an
	// AWS IoT host name.
	Region string
	// KeepAlive is the MQTT keep-alive; zero means transport's default (600 s).
	KeepAlive time.Duration
	// MaxPublishRate is --max-publish-rate: the cap on publishes per second.
	MaxPublishRate PublishRate
	// Thing is the thing whose shadow the program uses; RegisterFlags defines --thing
	// only when given a default.
	Thing string
}

// RegisterFlags defines the connection flags on fs — --endpoint, --ca, --cert, --key,
// --client-id, --region, --keepalive — and returns where their values go once fs is
// parsed. thing, when not empty, also defines --thing with that default.
func RegisterFlags(fs *flag.FlagSet, thing string) *Flags {
	f := &Flags{}
	fs.StringVar(&f.Endpoint, "endpoint", "", "broker `URL`: mqtts://HOST:8883, mqtts://HOST:443, wss://HOST/mqtt or mqtt://127.0.0.1:1883 (default: an embedded localiot)")
	fs.StringVar(&f.CAFile, "ca", "", "root CA `FILE` (PEM), e.g. AmazonRootCA1.pem")
	fs.StringVar(&f.CertFile, "cert", "", "device certificate `FILE` (PEM), for mqtts")
	fs.StringVar(&f.KeyFile, "key", "", "device private key `FILE` (PEM), for mqtts")
	fs.StringVar(&f.ClientID, "client-id", "", "MQTT client `ID` (default: the program's name)")
	fs.StringVar(&f.Region, "region", "", "AWS `REGION` for SigV4 on wss (default: from the endpoint's host name)")
	fs.DurationVar(&f.KeepAlive, "keepalive", 0, "MQTT keep-alive `DURATION`, whole seconds (default 600s; AWS accepts 30s-20m)")
	f.MaxPublishRate.Register(fs)
	if thing != "" {
		fs.StringVar(&f.Thing, "thing", thing, "thing `NAME` whose shadow is used")
	}
	return f
}

// Config returns the transport configuration the flags describe, with clientID as the
// client ID unless --client-id was given. It is the configuration for --endpoint;
// Open adapts it for an embedded localiot.
func (f *Flags) Config(clientID string) transport.Config {
	if f.ClientID != "" {
		clientID = f.ClientID
	}
	cfg := transport.Config{
		Endpoint:  f.Endpoint,
		CAFile:    f.CAFile,
		CertFile:  f.CertFile,
		KeyFile:   f.KeyFile,
		ClientID:  clientID,
		Region:    f.Region,
		KeepAlive: f.KeepAlive,
	}
	f.MaxPublishRate.Apply(&cfg)
	return cfg
}

// PublishRate is the --max-publish-rate flag. Left unset it keeps transport's
// default: AWS IoT's 100 publishes per second on an AWS IoT endpoint, where faster
// publishing is throttled, and no cap on any other broker. 0 lifts the cap; N > 0
// caps at N per second. Register it on a flag set, then Apply it to a configuration.
type PublishRate struct {
	rate float64
	set  bool
}

// Register defines --max-publish-rate on fs.
func (p *PublishRate) Register(fs *flag.FlagSet) {
	fs.Var(p, "max-publish-rate", "cap on publishes per `N` per second; 0 = no cap (default: AWS IoT's 100/s on AWS IoT endpoints, none elsewhere)")
}

// String returns the flag's value, "" when unset.
func (p *PublishRate) String() string {
	if p == nil || !p.set {
		return ""
	}
	return strconv.FormatFloat(p.rate, 'g', -1, 64)
}

// Set parses a rate: a number of publishes per second, 0 or more.
func (p *PublishRate) Set(s string) error {
	r, err := strconv.ParseFloat(s, 64)
	if err != nil || r < 0 || math.IsInf(r, 0) || math.IsNaN(r) {
		return fmt.Errorf("want a number of publishes per second, 0 or more (0 = no cap), got %q", s)
	}
	p.rate, p.set = r, true
	return nil
}

// Apply sets cfg.MaxPublishRate as the flag says, and leaves it alone when the flag
// was not given.
func (p *PublishRate) Apply(cfg *transport.Config) {
	switch {
	case !p.set:
	case p.rate == 0:
		cfg.MaxPublishRate = -1
	default:
		cfg.MaxPublishRate = p.rate
	}
}

// ErrUsage marks a wrong command line, so that Main exits with status 2 (as the flag
// package does) rather than 1, which means the program failed at its work.
var ErrUsage = errors.New("usage")

// Usagef returns an error wrapping ErrUsage, for checks of the command line that the
// flag package cannot make (a flag that needs another, a value out of range).
func Usagef(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUsage, fmt.Sprintf(format, args...))
}

// Parse parses args into fs, which must use flag.ContinueOnError, and refuses
// positional arguments. A bad flag is an ErrUsage; -h is flag.ErrHelp, which Main
// treats as success, so run can return Parse's error as it is.
func Parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", ErrUsage, err)
	}
	if fs.NArg() > 0 {
		return Usagef("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

// Main is a program's main function: run gets the command line (without the program
// name), stdout and a context that ends on SIGINT or SIGTERM, so that run shuts down
// cleanly — its manager reports what is in flight, its connections close — before
// the process exits. Main exits with 0 when run returns nil or flag.ErrHelp, 2 for an
// ErrUsage, and 1 for any other error, which it prints to stderr. Keeping main this
// small lets a test call run with its own arguments, writer and context.
func Main(run func(ctx context.Context, args []string, stdout io.Writer) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case errors.Is(err, ErrUsage):
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

// Printer writes lines to one writer from any number of goroutines — Reconcile,
// callbacks, acks and the main loop alike — so lines never interleave. The zero value
// is not usable; use NewPrinter.
type Printer struct {
	mu sync.Mutex
	w  io.Writer
}

// NewPrinter returns a Printer writing to w.
func NewPrinter(w io.Writer) *Printer { return &Printer{w: w} }

// Printf formats a line and writes it, adding a newline at the end.
func (p *Printer) Printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, format+"\n", args...)
}
