// Basicdiscovery is the basicDiscovery sample of the AWS IoT Device SDK for Python v1,
// in Go: a device asks Greengrass discovery which core of its group to talk to,
// connects to the first of the core's addresses that answers, verifying it with the
// group CA, then subscribes to a topic and publishes a few messages to it.
//
// The Python sample (samples/greengrass/basicDiscovery.py) calls
// DiscoveryInfoProvider.discover with retries, takes the first CA and core of the
// answer and loops over the core's connectivity list with AWSIoTMQTTClient.connect;
// here discovery.Discover and discovery.Connect do the same.
//
// Against an embedded localiot (TLS and discovery listeners, certificates made in
// memory, nothing to set up):
//
//	go run ./examples/basicdiscovery
//
// Against AWS IoT Greengrass, as a thing of a Greengrass group:
//
//	go run ./examples/basicdiscovery --endpoint greengrass-ats.iot.eu-west-1.amazonaws.com \
//	    --ca AmazonRootCA1.pem --cert device.pem.crt --key private.pem.key --thing MyDevice
//
// Against `shadowsync serve --discovery 127.0.0.1:8443 --thing MyDevice`: --endpoint
// 127.0.0.1:8443 with the ca.pem, MyDevice.pem and MyDevice.key it generated.
package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/shadowsync/shadowsync/cmdkit"
	"github.com/shadowsync/shadowsync/discovery"
	"github.com/shadowsync/shadowsync/localiot"
	"github.com/shadowsync/shadowsync/transport"
)

func main() { cmdkit.Main(run) }

// message is what the sample publishes, as the Python sample does.
type message struct {
	Message  string `json:"message"`
	Sequence int    `json:"sequence"`
}

// localThing is the thing the embedded localiot issues a certificate for.
const localThing = "basicDiscovery"

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("basicdiscovery", flag.ContinueOnError)
	fs.SetOutput(stdout)
	endpoint := fs.String("endpoint", "", "discovery `HOST[:PORT]`, e.g. greengrass-ats.iot.eu-west-1.amazonaws.com (port 8443 unless given; default: an embedded localiot)")
	caFile := fs.String("ca", "", "root CA `FILE` (PEM) for the discovery endpoint, e.g. AmazonRootCA1.pem")
	certFile := fs.String("cert", "", "device certificate `FILE` (PEM)")
	keyFile := fs.String("key", "", "device private key `FILE` (PEM)")
	thing := fs.String("thing", localThing, "the device's thing `NAME`, also its MQTT client ID")
	topic := fs.String("topic", "sdk/test/go", "`TOPIC` to subscribe and publish to on the core")
	count := fs.Int("count", 3, "how many messages to publish")
	text := fs.String("message", "Hello World!", "message `TEXT` to publish")
	timeout := fs.Duration("timeout", 10*time.Second, "time-out of one discovery request (the Python sample's 10 s)")
	var rate cmdkit.PublishRate
	rate.Register(fs)
	retries := fs.Int("retries", 3, "discovery attempts before giving up (throttling and time-outs are retried)")
	discoverOnly := fs.Bool("discover-only", false, "print the discovery answer and exit (the Python sample's --print_discover_resp_only)")
	if err := cmdkit.Parse(fs, args); err != nil {
		return err
	}
	if *count < 1 || *retries < 1 {
		return cmdkit.Usagef("--count and --retries must be at least 1")
	}
	out := cmdkit.NewPrinter(stdout)

	cfg := discovery.Config{Endpoint: *endpoint, ThingName: *thing, CAFile: *caFile, CertFile: *certFile, KeyFile: *keyFile, Timeout: *timeout}
	if *endpoint == "" {
		if *caFile != "" || *certFile != "" || *keyFile != "" {
			return cmdkit.Usagef("--ca, --cert and --key need --endpoint")
		}
		stop, err := startLocal(ctx, &cfg, out)
		if err != nil {
			return err
		}
		defer stop()
	} else if *certFile == "" || *keyFile == "" {
		return cmdkit.Usagef("--endpoint needs --cert and --key: discovery accepts mutual TLS only")
	}

	info, err := discover(ctx, cfg, *retries, out)
	if err != nil {
		return err
	}
	if *discoverOnly {
		out.Printf("%s", info.Raw)
		return nil
	}
	for _, ca := range info.CAs() {
		out.Printf("group %s CA: %d bytes of PEM", ca.GroupID, len(ca.PEM))
	}

	base := transport.Config{ClientID: *thing, CertFile: *certFile, KeyFile: *keyFile}
	rate.Apply(&base)
	if cfg.Certificate != nil {
		base.CertFile, base.KeyFile = "", ""
		base.TLS = cfg.TLS.Clone()
		base.TLS.Certificates = append(base.TLS.Certificates, *cfg.Certificate)
	}
	conn, core, err := discovery.Connect(ctx, info, discovery.ConnectOptions{
		Base:           base,
		AttemptTimeout: 10 * time.Second,
		OnAttempt: func(c discovery.Candidate) {
			out.Printf("trying core %s at %s", c.CoreARN, c.Connectivity.Addr())
		},
	})
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	out.Printf("connected to core %s of group %s at %s as %s", core.CoreARN, core.GroupID, core.Endpoint(), conn.ClientID())

	received := make(chan struct{}, *count)
	_, err = conn.Subscribe(ctx, *topic, transport.HandlerFunc(func(_ context.Context, m transport.Message) {
		out.Printf("received from %s: %s", m.Topic, m.Payload)
		select {
		case received <- struct{}{}:
		default:
		}
	}), transport.QoS(1))
	if err != nil {
		return err
	}
	for i := 1; i <= *count; i++ {
		payload, err := json.Marshal(message{Message: *text, Sequence: i})
		if err != nil {
			return err
		}
		if err := conn.Publish(ctx, *topic, payload, transport.QoS(1)); err != nil {
			return fmt.Errorf("publish %d: %w", i, err)
		}
		out.Printf("published to %s: %s", *topic, payload)
	}
	deadline := time.After(10 * time.Second)
	for got := 0; got < *count; got++ {
		select {
		case <-received:
		case <-deadline:
			return fmt.Errorf("received %d of %d messages in 10s", got, *count)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	out.Printf("all %d messages came back through the core", *count)
	return nil
}

// discover makes up to attempts discovery requests, backing off after throttling,
// time-outs and network errors as the Python sample does; a refused request (400,
// 401/403, 404) or a bad configuration is final.
func discover(ctx context.Context, cfg discovery.Config, attempts int, out *cmdkit.Printer) (*discovery.Info, error) {
	wait := time.Second
	for i := 1; ; i++ {
		info, err := discovery.Discover(ctx, cfg)
		if err == nil {
			for _, g := range info.Groups {
				for _, c := range g.Cores {
					out.Printf("discovered core %s in group %s (%d addresses)", c.ThingARN, g.ID, len(c.Connectivity))
				}
			}
			return info, nil
		}
		var he *discovery.HTTPError
		final := errors.Is(err, discovery.ErrInvalidConfig) || errors.As(err, &he) && !errors.Is(err, discovery.ErrThrottled)
		if final || i == attempts || ctx.Err() != nil {
			return nil, err
		}
		out.Printf("discovery failed (%v); %d attempts left, retrying in %v", err, attempts-i, wait)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		wait *= 2
	}
}

// startLocal runs a localiot with a TLS MQTT listener and a discovery listener,
// certificates made in memory, and points cfg at it with the thing's certificate.
// Things may use the sdk/test/ topics besides their shadows, as a sample policy would
// allow, so that --topic works.
func startLocal(ctx context.Context, cfg *discovery.Config, out *cmdkit.Printer) (stop func(), err error) {
	certs, err := localiot.EnsureCerts("", cfg.ThingName)
	if err != nil {
		return nil, err
	}
	srv, err := localiot.New(localiot.Options{
		TLS:         certs.TLSListener(""),
		Discovery:   certs.DiscoveryListener(""),
		ThingTopics: []string{"sdk/test/#"},
	})
	if err != nil {
		return nil, err
	}
	srvCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- srv.Start(srvCtx) }()
	select {
	case <-srv.Ready():
	case err := <-done:
		cancel()
		return nil, fmt.Errorf("start localiot: %w", err)
	case <-ctx.Done():
		cancel()
		<-done
		return nil, ctx.Err()
	}
	eps := srv.Endpoints()
	out.Printf("embedded localiot: discovery at %s, MQTT at %s", eps.Discovery, eps.TLS)
	cert := certs.Things[cfg.ThingName]
	cfg.Endpoint = eps.Discovery
	cfg.TLS = &tls.Config{RootCAs: certs.Pool}
	cfg.Certificate = &cert
	return func() { cancel(); <-done }, nil
}
