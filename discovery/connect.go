package discovery

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/shadowsync/shadowsync/transport"
)

// ErrNoCores is returned by Connect for an Info with no connectivity entry to try.
var ErrNoCores = errors.New("discovery: no core connectivity to try")

// Candidate is one address of one core, with what a device needs to connect to it:
// the group's CAs to verify the core.
type Candidate struct {
	// GroupID and CoreARN say which group and core the address belongs to.
	GroupID, CoreARN string
	// Connectivity is the address.
	Connectivity Connectivity
	// CAs are the group's CA certificates in PEM.
	CAs []string
}

// Endpoint returns the transport endpoint of the address: mqtts://HostAddress:PortNumber.
func (c Candidate) Endpoint() string { return "mqtts://" + c.Connectivity.Addr() }

// Config returns base with Endpoint set to the candidate's address and the group's
// CAs as the only roots (CAFile is cleared; TLS is cloned, keeping its client
// certificate). base carries the device's client certificate (CertFile/KeyFile or
// TLS.Certificates), client ID and any other setting.
func (c Candidate) Config(base transport.Config) (transport.Config, error) {
	if c.Connectivity.HostAddress == "" || c.Connectivity.PortNumber < 1 || c.Connectivity.PortNumber > 65535 {
		return transport.Config{}, fmt.Errorf("%w: connectivity %q of core %s: host %q port %d", ErrInvalidResponse, c.Connectivity.ID, c.CoreARN, c.Connectivity.HostAddress, c.Connectivity.PortNumber)
	}
	g := Group{ID: c.GroupID, CAs: c.CAs}
	pool, err := g.CertPool()
	if err != nil {
		return transport.Config{}, err
	}
	cfg := base
	cfg.Endpoint = c.Endpoint()
	cfg.CAFile = ""
	t := &tls.Config{}
	if base.TLS != nil {
		t = base.TLS.Clone()
	}
	t.RootCAs = pool
	t.ServerName = "" // the core's address, not whatever base was for
	cfg.TLS = t
	return cfg, nil
}

// Candidates returns every connectivity entry of every core of every group, in the
// response's order: the order Connect tries them in.
func (i *Info) Candidates() []Candidate {
	var cs []Candidate
	for _, g := range i.Groups {
		for _, core := range g.Cores {
			for _, e := range core.Connectivity {
				cs = append(cs, Candidate{GroupID: g.ID, CoreARN: core.ThingARN, Connectivity: e, CAs: g.CAs})
			}
		}
	}
	return cs
}

// ConnectOptions configure Connect.
type ConnectOptions struct {
	// Base is the configuration every attempt starts from: the device's client
	// certificate (CertFile/KeyFile or TLS.Certificates), client ID, keep-alive and
	// so on. Each attempt replaces Endpoint and the roots (Candidate.Config).
	Base transport.Config
	// AttemptTimeout bounds each attempt. Zero means transport.DefaultConnectTimeout.
	// An address that refuses the TCP connection fails at once rather than being
	// retried until the timeout.
	AttemptTimeout time.Duration
	// OnAttempt, when set, is called before each attempt, e.g. to print progress.
	OnAttempt func(Candidate)
}

// Attempt is one failed try of a Candidate.
type Attempt struct {
	Candidate
	// Err is why it failed.
	Err error
}

// ConnectError is returned by Connect when no candidate answered. It lists every
// attempt; errors.Is and errors.As look through each attempt's error.
type ConnectError struct {
	Attempts []Attempt
}

// Error lists the attempts, one per line after the first.
func (e *ConnectError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "discovery: no core answered (%d attempts)", len(e.Attempts))
	for _, a := range e.Attempts {
		fmt.Fprintf(&b, "\n  core %s (group %s) connectivity %q at %s: %v", a.CoreARN, a.GroupID, a.Connectivity.ID, a.Connectivity.Addr(), a.Err)
	}
	return b.String()
}

// Unwrap returns the attempts' errors.
func (e *ConnectError) Unwrap() []error {
	errs := make([]error, len(e.Attempts))
	for i, a := range e.Attempts {
		errs[i] = a.Err
	}
	return errs
}

// Connect tries info's candidates in order (group by group, core by core, address by
// address, as the Python SDK's basicDiscovery sample does) with transport.Dial and
// returns the first connection that comes online, with the candidate it reached.
// The connection runs until its Close, reconnecting to that same address. When none
// answers it returns a *ConnectError listing every attempt; when ctx ends it returns
// ctx's error with the attempts made so far.
func Connect(ctx context.Context, info *Info, opts ConnectOptions) (*transport.Conn, Candidate, error) {
	candidates := info.Candidates()
	if len(candidates) == 0 {
		return nil, Candidate{}, ErrNoCores
	}
	timeout := opts.AttemptTimeout
	if timeout <= 0 {
		timeout = transport.DefaultConnectTimeout
	}
	var failed []Attempt
	for _, c := range candidates {
		if err := ctx.Err(); err != nil {
			return nil, Candidate{}, fmt.Errorf("%w: %w", err, &ConnectError{Attempts: failed})
		}
		if opts.OnAttempt != nil {
			opts.OnAttempt(c)
		}
		conn, err := dialCandidate(ctx, c, opts.Base, timeout)
		if err == nil {
			return conn, c, nil
		}
		failed = append(failed, Attempt{Candidate: c, Err: err})
	}
	return nil, Candidate{}, &ConnectError{Attempts: failed}
}

// dialCandidate makes one attempt. transport.Dial retries refused TCP connections
// until its ctx ends; a dialer that cancels the attempt on its first failure makes a
// dead address fail at once.
func dialCandidate(ctx context.Context, c Candidate, base transport.Config, timeout time.Duration) (*transport.Conn, error) {
	cfg, err := c.Config(base)
	if err != nil {
		return nil, err
	}
	ctx, cancelTimeout := context.WithTimeoutCause(ctx, timeout, fmt.Errorf("attempt timed out after %v", timeout))
	defer cancelTimeout()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := cfg.Dialer
	if next == nil {
		next = &net.Dialer{}
	}
	cfg.Dialer = failFastDialer{next: next, fail: cancel}
	conn, err := transport.Dial(ctx, cfg)
	if err != nil {
		cause := context.Cause(ctx)
		var refused dialFailed
		switch {
		case errors.As(cause, &refused):
			return nil, refused.err // the whole story; Dial's error only adds "canceled"
		case cause != nil && !errors.Is(err, cause):
			return nil, fmt.Errorf("%w: %w", cause, err)
		}
		return nil, err
	}
	// From here on the Conn reconnects with its own backoff like any other: only
	// the first dial fails fast.
	return conn, nil
}

// failFastDialer cancels the attempt when a TCP connection cannot be opened.
type failFastDialer struct {
	next transport.ContextDialer
	fail context.CancelCauseFunc
}

// DialContext dials with next, cancelling the attempt with the error if it fails.
func (d failFastDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	conn, err := d.next.DialContext(ctx, network, addr)
	if err != nil {
		d.fail(dialFailed{err})
	}
	return conn, err
}

// dialFailed marks the cause of an attempt cancelled by failFastDialer.
type dialFailed struct{ err error }

func (e dialFailed) Error() string { return e.err.Error() }
func (e dialFailed) Unwrap() error { return e.err }
