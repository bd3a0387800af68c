package main

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/shadowsync/shadowsync/localiot"
)

const (
	defaultPlainAddr = "127.0.0.1:1883"
	defaultTLSAddr   = "127.0.0.1:8883"
)

// runServe runs localiot until ctx ends (SIGINT or SIGTERM).
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("serve", stdout)
	var (
		plainAddr  = fs.String("mqtt", "", "serve plain MQTT on `ADDR`, a loopback address (local development only; clients get operator rights)")
		plainAny   = fs.Bool("mqtt-insecure-any-address", false, "allow --mqtt on an address that is not loopback: anyone who can reach it gets operator rights, with no authentication")
		tlsAddr    = fs.String("mqtts", "", "serve MQTT over TLS with client certificates on `ADDR`")
		wsAddr     = fs.String("ws", "", "serve MQTT over secure WebSocket with SigV4 at wss://`ADDR`/mqtt and, as AWS IoT does on port 443, MQTT over TLS with client certificates to clients offering ALPN x-amzn-mqtt-ca on the same port")
		httpsAddr  = fs.String("https", "", "also serve AWS IoT's HTTPS data plane (shadows and Publish for apps using an AWS SDK's iotdataplane client) and its jobs control plane (CreateJob, DescribeJob, ... for the iot client and `shadowsync jobs`), SigV4-signed with --access-key-id, at https://`ADDR`; the MQTT listeners are as without it")
		certDir    = fs.String("certs", "", "generate or reuse the CA, server, operator and thing certificates in `DIR` (default: a shadowsync directory in the user's cache directory)")
		dataDir    = fs.String("data", "", "keep shadows in `DIR` so that they survive restarts (default: in memory)")
		keyID      = fs.String("access-key-id", os.Getenv("AWS_ACCESS_KEY_ID"), "access key `ID` WebSocket and HTTPS clients sign with (default: $AWS_ACCESS_KEY_ID)")
		secret     = fs.String("secret-access-key", "", "secret access `KEY` for --access-key-id (default: $AWS_SECRET_ACCESS_KEY)")
		operatorPE = fs.String("operator-cert", "", "PEM `FILE` of one more client certificate with operator rights (on --mqtts and --ws)")
		logLevel   = fs.String("log-level", "info", "log `LEVEL`: debug, info, warn or error")
		metrics    = fs.String("metrics", "", "serve Prometheus metrics (connections refused) at http://`ADDR`/metrics")
		consAddr   = fs.String("console", "", "serve the web console (things, shadows, history, clients, live; edits of desired state) at http://`ADDR`, a loopback address: it has no authentication")
		consAny    = fs.Bool("console-insecure-any-address", false, "allow --console on an address that is not loopback: anyone who can reach it can read and change every shadow, with no authentication")
		attach     = fs.String("attach", "", "run only the Device Shadow service, as a client of the broker at `URL` (mqtt://HOST:PORT or mqtts://HOST:PORT; user:password@ in the URL if the broker asks for them), for brokers with no shadow service of their own such as mosquitto; no listener of localiot's own")
		attachCA   = fs.String("attach-ca", "", "with --attach mqtts://: trust the broker certificates signed by the CA in PEM `FILE` (default: the system's roots)")
		attachCert = fs.String("attach-cert", "", "with --attach mqtts://: the service's client certificate in PEM `FILE`, for a broker that asks for one (with --attach-key)")
		attachKey  = fs.String("attach-key", "", "with --attach-cert: the certificate's private key in PEM `FILE`")
		mirror     = fs.String("event-mirror", "", "with --attach: also publish every delta and documents message under `PREFIX`/things/... (no $aws), for fleets on brokers that never deliver $ topics to shared subscriptions (mosquitto 2.0)")
		discAddr   = fs.String("discovery", "", "serve Greengrass discovery at https://`ADDR`/greengrass/discover/thing/NAME (AWS: port 8443), answering with the --mqtts listener as the group's one core; needs --mqtts")
		things     listFlag
		names      listFlag
	)
	fs.Var(&things, "thing", "generate or reuse a client certificate for thing `NAME` (repeatable)")
	fs.Var(&names, "server-name", "issue the server certificate for `NAME`, a DNS name or IP address, instead of localhost, 127.0.0.1 and ::1 (repeatable; a certificate for other names is re-issued)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *secret == "" {
		*secret = os.Getenv("AWS_SECRET_ACCESS_KEY")
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("%w: --log-level %q: want debug, info, warn or error", errUsage, *logLevel)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if err := checkAttachFlags(fs, *attach != ""); err != nil {
		return err
	}
	if *attach != "" {
		return runAttached(ctx, attachOptions{broker: *attach, caFile: *attachCA, certFile: *attachCert, keyFile: *attachKey, eventMirror: *mirror, dataDir: *dataDir}, log, stdout)
	}

	if *plainAny && *plainAddr == "" {
		return fmt.Errorf("%w: --mqtt-insecure-any-address needs --mqtt", errUsage)
	}
	if *plainAddr == "" && *tlsAddr == "" && *wsAddr == "" {
		*plainAddr, *tlsAddr = defaultPlainAddr, defaultTLSAddr
	}
	if *discAddr != "" && *tlsAddr == "" {
		return fmt.Errorf("%w: --discovery needs --mqtts: the discovery answer points devices at that listener", errUsage)
	}
	var opts localiot.Options
	opts.Logger = log
	if *plainAddr != "" {
		if !isLoopbackAddr(*plainAddr) {
			if !*plainAny {
				return fmt.Errorf("%w: --mqtt %s is not a loopback address: plain MQTT has no authentication and gives every client operator rights; add --mqtt-insecure-any-address to serve it there anyway", errUsage, *plainAddr)
			}
			fmt.Fprintf(stderr, "WARNING: --mqtt %s is not a loopback address: anyone who can reach it has operator rights, with no authentication\n", *plainAddr)
		}
		opts.Plain = &localiot.PlainListener{Addr: *plainAddr, InsecureAnyAddress: *plainAny}
	}
	var certs *localiot.CertSet
	if *tlsAddr != "" || *wsAddr != "" || *httpsAddr != "" {
		dir := *certDir
		if dir == "" {
			cache, err := os.UserCacheDir()
			if err != nil {
				return fmt.Errorf("%w: no --certs directory given and no cache directory: %v", errUsage, err)
			}
			dir = filepath.Join(cache, "shadowsync", "certs")
		}
		var err error
		if certs, err = localiot.EnsureCertsWith(dir, localiot.CertOptions{Things: things, ServerNames: names}); err != nil {
			return err
		}
	} else if len(things) > 0 || len(names) > 0 || *certDir != "" {
		return fmt.Errorf("%w: --thing, --server-name and --certs need a TLS or WebSocket listener (--mqtts or --ws)", errUsage)
	}
	var operators []*x509.Certificate
	if *operatorPE != "" {
		if *tlsAddr == "" && *wsAddr == "" {
			return fmt.Errorf("%w: --operator-cert needs --mqtts or --ws", errUsage)
		}
		cert, err := readCertificate(*operatorPE)
		if err != nil {
			return err
		}
		operators = append(operators, cert)
	}
	if *tlsAddr != "" {
		opts.TLS = certs.TLSListener(*tlsAddr)
		opts.TLS.Operators = append(opts.TLS.Operators, operators...)
	}
	if *discAddr != "" {
		opts.Discovery = certs.DiscoveryListener(*discAddr)
	}
	if *wsAddr != "" {
		if *keyID == "" || *secret == "" {
			return fmt.Errorf("%w: --ws needs --access-key-id and --secret-access-key (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)", errUsage)
		}
		alpn := certs.ClientCertAuth()
		alpn.Operators = append(alpn.Operators, operators...)
		opts.WebSocket = &localiot.WebSocketListener{
			Addr:         *wsAddr,
			Certificate:  &certs.Server,
			Credentials:  []localiot.Credential{{AccessKeyID: *keyID, SecretAccessKey: *secret, SessionToken: os.Getenv("AWS_SESSION_TOKEN")}},
			MQTTOverALPN: alpn,
		}
	}
	if *httpsAddr != "" {
		var err error
		if opts.HTTPS, err = httpsListener(*httpsAddr, *keyID, *secret, certs); err != nil {
			return err
		}
	}
	var err error
	if opts.Console, err = consoleListener(*consAddr, *consAny, stderr); err != nil {
		return err
	}
	if *dataDir != "" {
		store, err := openStore(*dataDir)
		if err != nil {
			return err
		}
		defer store.Close()
		opts.Store = store
	}

	srv, err := localiot.New(opts)
	if err != nil {
		return err
	}
	var metricsLn net.Listener
	if *metrics != "" {
		if metricsLn, err = net.Listen("tcp", *metrics); err != nil {
			return fmt.Errorf("metrics listener: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(srv.Registry(), promhttp.HandlerOpts{}))
		msrv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = msrv.Serve(metricsLn) }()
		defer msrv.Close()
	}
	done := make(chan error, 1)
	go func() { done <- srv.Start(ctx) }()
	select {
	case err := <-done:
		return err
	case <-srv.Ready():
	}
	eps := srv.Endpoints()
	if eps.Plain != "" {
		fmt.Fprintf(stdout, "mqtt   %s  (plain, operator rights: local development only)\n", eps.Plain)
	}
	if eps.TLS != "" {
		fmt.Fprintf(stdout, "mqtts  %s  (TLS, client certificate required)\n", eps.TLS)
	}
	if eps.WebSocket != "" {
		fmt.Fprintf(stdout, "ws     %s  (SigV4 presigned URL, access key %s)\n", eps.WebSocket, *keyID)
	}
	if eps.ALPN != "" {
		fmt.Fprintf(stdout, "alpn   %s  (the ws port: TLS with ALPN x-amzn-mqtt-ca, client certificate required)\n", eps.ALPN)
	}
	if eps.Discovery != "" {
		fmt.Fprintf(stdout, "discovery https://%s/greengrass/discover/thing/NAME  (Greengrass discovery, client certificate required)\n", eps.Discovery)
	}
	if eps.HTTPS != "" {
		fmt.Fprintf(stdout, "https  %s  (AWS IoT data plane and jobs control plane, SigV4 with access key %s)\n", eps.HTTPS, *keyID)
	}
	if eps.Console != "" {
		fmt.Fprintf(stdout, "console %s  (web console: no authentication, local use only)\n", eps.Console)
	}
	if metricsLn != nil {
		fmt.Fprintf(stdout, "metrics http://%s/metrics\n", metricsLn.Addr())
	}
	if certs != nil {
		names := []string{"ca.pem", "server.pem", "operator.pem/.key"}
		for _, t := range things {
			names = append(names, t+".pem/.key")
		}
		fmt.Fprintf(stdout, "certs  %s  (%s)\n", certs.Dir, strings.Join(names, ", "))
	}
	if *dataDir != "" {
		fmt.Fprintf(stdout, "data   %s\n", *dataDir)
	} else {
		fmt.Fprintln(stdout, "data   in memory (use --data DIR to keep shadows across restarts)")
	}
	return <-done
}

// openStore opens the shadow store kept in dir (serve's --data).
func openStore(dir string) (*localiot.BoltStore, error) {
	return localiot.OpenBoltStore(filepath.Join(dir, "shadows.db"))
}

// isLoopbackAddr reports whether addr is host:port with a loopback IP address or
// "localhost" as its host; the server makes the same check.
func isLoopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// readCertificate reads the first certificate of a PEM file.
func readCertificate(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, fmt.Errorf("%s: %w", path, errors.New("no PEM certificate found"))
		}
		if block.Type == "CERTIFICATE" {
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			return cert, nil
		}
	}
}
