// Package exampleflags holds what the examples redoing the samples of the AWS IoT
// Device SDK for Python v1 share: the endpoint and credential flags, the choice between
// a real endpoint and an embedded localiot, a printer safe to use from callbacks, and
// the main function's plumbing. It keeps each example's main.go about its one feature.
package exampleflags

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/shadowsync/shadowsync/transport"
)

// Flags are the connection flags every example accepts, named as the Python samples'
// options are spelled out: -e endpoint, -r root CA, -c certificate, -k key.
type Flags struct {
	// Endpoint is the broker URL (mqtts://host:8883, mqtts://host:443,
	// wss://host/mqtt, mqtt://127.0.0.1:1883). Empty runs against an embedded localiot.
	Endpoint string
	// CAFile, CertFile and KeyFile are the root CA, the device certificate and its
	// private key, in PEM.
	CAFile, CertFile, KeyFile string
	// ClientID is the MQTT client ID; empty means the example's default.
	ClientID string
	// Region is the AWS region for SigV4 (WebSocket); empty means the region in an
	// AWS IoT host name.
	Region string
	// KeepAlive is the MQTT keep-alive; zero means transport's default (600 s).
	KeepAlive time.Duration
	// Thing is the thing whose shadow the shadow examples use.
	Thing string
}

// Register defines the connection flags on fs and returns where their values go.
// thing, when not empty, also defines --thing with that default.
func Register(fs *flag.FlagSet, thing string) *Flags {
	f := &Flags{}
	fs.StringVar(&f.Endpoint, "endpoint", "", "broker `URL`: mqtts://HOST:8883, mqtts://HOST:443, wss://HOST/mqtt or mqtt://127.0.0.1:1883 (default: an embedded localiot)")
	fs.StringVar(&f.CAFile, "ca", "", "root CA `FILE` (PEM), e.g. AmazonRootCA1.pem")
	fs.StringVar(&f.CertFile, "cert", "", "device certificate `FILE` (PEM), for mqtts")
	fs.StringVar(&f.KeyFile, "key", "", "device private key `FILE` (PEM), for mqtts")
	fs.StringVar(&f.ClientID, "client-id", "", "MQTT client `ID` (default: the example's name)")
	fs.StringVar(&f.Region, "region", "", "AWS `REGION` for SigV4 on wss (default: from the endpoint's host name)")
	fs.DurationVar(&f.KeepAlive, "keepalive", 0, "MQTT keep-alive `DURATION`, whole seconds (default 600s; AWS accepts 30s-20m)")
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
	return transport.Config{
		Endpoint:  f.Endpoint,
		CAFile:    f.CAFile,
		CertFile:  f.CertFile,
		KeyFile:   f.KeyFile,
		ClientID:  clientID,
		Region:    f.Region,
		KeepAlive: f.KeepAlive,
	}
}

// ErrUsage marks a wrong command line; Main exits with status 2 for it.
var ErrUsage = errors.New("usage")

// Usagef returns an error wrapping ErrUsage.
func Usagef(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUsage, fmt.Sprintf(format, args...))
}

// Parse parses args into fs, which must use flag.ContinueOnError, and refuses
// positional arguments. A bad flag is an ErrUsage; -h is flag.ErrHelp.
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

// Main runs an example: run gets the command line, stdout and a context that ends on
// SIGINT or SIGTERM. Main exits with 0 when run returns nil or flag.ErrHelp, 2 for an
// ErrUsage, and 1 for any other error, which it prints to stderr.
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

// Printer writes lines to one writer from any number of goroutines: callbacks, acks
// and the main loop alike. The zero value is not usable; use NewPrinter.
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
