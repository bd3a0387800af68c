package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/shadowsync/shadowsync/cmdkit"
	"github.com/shadowsync/shadowsync/shadowclient"
	"github.com/shadowsync/shadowsync/shadowstate"
	"github.com/shadowsync/shadowsync/transport"
)

// defaultEndpoint is where the shadow commands connect by default: what
// `shadowsync serve` serves.
const defaultEndpoint = "mqtt://" + defaultPlainAddr

// connFlags are the endpoint, credential and shadow flags of get, update, delete and
// watch: the same as the examples' flags, plus which shadow and how to print.
type connFlags struct {
	endpoint, ca, cert, key string
	clientID, region        string
	keepAlive               time.Duration
	maxPublishRate          cmdkit.PublishRate
	thing, shadow           string
	timeout                 time.Duration
	json                    bool
}

// addConnFlags defines the shared flags on fs.
func addConnFlags(fs *flag.FlagSet) *connFlags {
	f := &connFlags{}
	fs.StringVar(&f.endpoint, "endpoint", defaultEndpoint, "broker `URL`: mqtt://HOST:PORT (shadowsync serve), mqtts://HOST:8883, mqtts://HOST:443 or wss://HOST/mqtt (AWS IoT)")
	fs.StringVar(&f.ca, "ca", "", "root CA `FILE` (PEM) for mqtts and wss, e.g. AmazonRootCA1.pem (default: the system roots)")
	fs.StringVar(&f.cert, "cert", "", "client certificate `FILE` (PEM) for mqtts")
	fs.StringVar(&f.key, "key", "", "client private key `FILE` (PEM) for mqtts")
	fs.StringVar(&f.clientID, "client-id", "", "MQTT client `ID` (default: a unique generated ID)")
	fs.StringVar(&f.region, "region", "", "AWS `REGION` for SigV4 on wss (default: from the endpoint's host name); credentials come from the standard AWS chain")
	fs.DurationVar(&f.keepAlive, "keepalive", 0, "MQTT keep-alive `DURATION`, whole seconds (default 600s)")
	f.maxPublishRate.Register(fs)
	fs.StringVar(&f.thing, "thing", "", "thing `NAME` (required)")
	fs.StringVar(&f.shadow, "shadow", "", "named shadow `NAME` (default: the thing's classic shadow)")
	fs.DurationVar(&f.timeout, "timeout", 10*time.Second, "bound on connecting and on each shadow request")
	fs.BoolVar(&f.json, "json", false, "print JSON, for scripts")
	return f
}

// id returns the shadow the flags name.
func (f *connFlags) id() shadowstate.ID { return shadowstate.ID{Thing: f.thing, Name: f.shadow} }

// validate checks the flags after parsing; its errors are usage errors.
func (f *connFlags) validate() error {
	if f.thing == "" {
		return fmt.Errorf("%w: --thing is required", errUsage)
	}
	if err := f.id().Validate(); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if (f.cert == "") != (f.key == "") {
		return fmt.Errorf("%w: --cert and --key go together", errUsage)
	}
	if f.timeout <= 0 {
		return fmt.Errorf("%w: --timeout must be positive", errUsage)
	}
	return nil
}

// session is one connection and the handle of the shadow a command works on.
type session struct {
	conn   *transport.Conn
	client *shadowclient.Client
	shadow *shadowclient.Handle
}

// open connects as the flags say, within --timeout. configure, if not nil, may set
// callbacks on the transport configuration first.
func (f *connFlags) open(ctx context.Context, configure func(*transport.Config)) (*session, error) {
	cfg := transport.Config{
		Endpoint:  f.endpoint,
		CAFile:    f.ca,
		CertFile:  f.cert,
		KeyFile:   f.key,
		ClientID:  f.clientID,
		Region:    f.region,
		KeepAlive: f.keepAlive,
	}
	f.maxPublishRate.Apply(&cfg)
	if configure != nil {
		configure(&cfg)
	}
	if _, err := transport.New(cfg); errors.Is(err, transport.ErrInvalidConfig) { // a bad endpoint or setting
		return nil, fmt.Errorf("%w: %v", errUsage, err)
	}
	dialCtx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	conn, err := transport.Dial(dialCtx, cfg)
	if err != nil {
		if f.endpoint == defaultEndpoint {
			err = fmt.Errorf("%w (is `shadowsync serve` running? use --endpoint for another broker)", err)
		}
		return nil, err
	}
	client, err := shadowclient.New(conn, shadowclient.Options{Timeout: f.timeout})
	if err == nil {
		var h *shadowclient.Handle
		if h, err = client.Shadow(f.thing, f.shadow); err == nil {
			return &session{conn: conn, client: client, shadow: h}, nil
		}
	}
	closeCtx, cancelClose := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancelClose()
	_ = conn.Close(closeCtx)
	return nil, err
}

// close disconnects, within 5 s.
func (s *session) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.client.Close(ctx)
	_ = s.conn.Close(ctx)
}

// explain turns a shadow request's failure into what the user reads: rejections
// name the shadow and carry AWS's code and message.
func explain(id shadowstate.ID, err error) error {
	var rej *shadowstate.Error
	if !errors.As(err, &rej) {
		return err
	}
	switch rej.Code {
	case 404:
		return fmt.Errorf("shadow %s not found (404: %s)", describe(id), rej.Message)
	case 409:
		return fmt.Errorf("shadow %s: 409 %s: it is not at the --version given; get it again for its current version", describe(id), rej.Message)
	default:
		return fmt.Errorf("shadow %s: rejected by the shadow service: %d %s", describe(id), rej.Code, rej.Message)
	}
}

// describe names a shadow for people: "Bot", or "motor" of thing "Bot".
func describe(id shadowstate.ID) string {
	if id.Name == "" {
		return fmt.Sprintf("%q", id.Thing)
	}
	return fmt.Sprintf("%q of thing %q", id.Name, id.Thing)
}

// compact returns v as one line of JSON, "{}" for an empty object.
func compact(v shadowstate.Object) string {
	if len(v) == 0 {
		return "{}"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%v", v)
	}
	return string(b)
}

// printJSON writes v to w as one line of JSON.
func printJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// lockedWriter serialises writes from callbacks that run on different goroutines, so
// that lines never interleave.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
