package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/shadowsync/shadowsync/localiot"
)

// attachOnly are the serve flags that mean something only with --attach.
var attachOnly = []string{"attach-ca", "attach-cert", "attach-key", "event-mirror"}

// attachFlags are the serve flags that go with --attach; every other one configures a
// listener of localiot's own broker, which an attached service does not run.
var attachFlags = append([]string{"attach", "data", "log-level"}, attachOnly...)

// attachOptions are serve's flags for running only the Device Shadow service, as a
// client of another broker.
type attachOptions struct {
	broker      string // --attach URL
	caFile      string // --attach-ca FILE
	certFile    string // --attach-cert FILE
	keyFile     string // --attach-key FILE
	eventMirror string // --event-mirror PREFIX
	dataDir     string // --data DIR
}

// checkAttachFlags refuses, with --attach, a flag that configures localiot's own
// broker; with no --attach, it refuses the flags that only mean something with it.
func checkAttachFlags(fs *flag.FlagSet, attach bool) error {
	var wrong []string
	fs.Visit(func(f *flag.Flag) {
		switch {
		case attach && !slices.Contains(attachFlags, f.Name):
			wrong = append(wrong, "--"+f.Name)
		case !attach && slices.Contains(attachOnly, f.Name):
			wrong = append(wrong, "--"+f.Name)
		}
	})
	if len(wrong) == 0 {
		return nil
	}
	sort.Strings(wrong)
	if attach {
		return fmt.Errorf("%w: not with --attach, which runs only the Device Shadow service on another broker and no broker of its own: %s", errUsage, strings.Join(wrong, ", "))
	}
	return fmt.Errorf("%w: only with --attach: %s", errUsage, strings.Join(wrong, ", "))
}

// runAttached runs localiot's Device Shadow service as a client of the broker at
// o.broker until ctx ends.
func runAttached(ctx context.Context, o attachOptions, log *slog.Logger, stdout io.Writer) error {
	opts := localiot.BrokerShadowOptions{Broker: o.broker, EventMirror: o.eventMirror, Logger: log}
	if (o.certFile == "") != (o.keyFile == "") {
		return fmt.Errorf("%w: --attach-cert and --attach-key go together", errUsage)
	}
	if o.caFile != "" || o.certFile != "" {
		opts.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if o.caFile != "" {
		pem, err := os.ReadFile(o.caFile)
		if err != nil {
			return fmt.Errorf("--attach-ca: %w", err)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return fmt.Errorf("--attach-ca %s: no PEM certificate in the file", o.caFile)
		}
		opts.TLSConfig.RootCAs = roots
	}
	if o.certFile != "" {
		cert, err := tls.LoadX509KeyPair(o.certFile, o.keyFile)
		if err != nil {
			return fmt.Errorf("--attach-cert/--attach-key: %w", err)
		}
		opts.TLSConfig.Certificates = []tls.Certificate{cert}
	}
	if o.dataDir != "" {
		store, err := openStore(o.dataDir)
		if err != nil {
			return err
		}
		defer store.Close()
		opts.Store = store
	}
	svc, err := localiot.NewBrokerShadowService(opts)
	if err != nil {
		return fmt.Errorf("%w: --attach: %v", errUsage, err)
	}
	done := make(chan error, 1)
	go func() { done <- svc.Start(ctx) }()
	select {
	case err := <-done:
		return err
	case <-svc.Ready():
	}
	fmt.Fprintf(stdout, "attached %s  (the Device Shadow service, answering every thing's shadow requests on that broker)\n", o.broker)
	if o.eventMirror != "" {
		fmt.Fprintf(stdout, "mirror %s  (deltas and documents also published under this prefix)\n", o.eventMirror)
	}
	if o.dataDir != "" {
		fmt.Fprintf(stdout, "data   %s\n", o.dataDir)
	} else {
		fmt.Fprintln(stdout, "data   in memory (use --data DIR to keep shadows across restarts)")
	}
	return <-done
}
