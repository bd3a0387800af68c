// Package discovery is Greengrass discovery: a device asks AWS IoT Greengrass which
// cores of its groups it can connect to, then connects to the first that answers.
// Discover makes the request (the AWS IoT Device SDK for Python v1's
// DiscoveryInfoProvider.discover), Info and its methods read the response
// (DiscoveryInfo), and Connect tries the cores' addresses in order with a
// transport.Conn (the Python SDK's basicDiscovery sample). localiot serves the same
// API for local development (localiot.DiscoveryListener).
package discovery

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/shadowsync/shadowsync/shadowstate"
)

// Defaults of Config, the Python SDK v1's.
const (
	// DefaultPort is the discovery API's port when Config.Endpoint has none.
	DefaultPort = 8443
	// DefaultTimeout bounds a discovery request when Config.Timeout is zero.
	DefaultTimeout = 120 * time.Second
	// ALPNProtocol is the TLS application protocol AWS requires on port 443, where
	// the discovery API shares the port with MQTT.
	ALPNProtocol = "x-amzn-http-ca"
)

// maxResponseBytes bounds the response body read: ten groups of a few cores and CAs
// are a few tens of kilobytes.
const maxResponseBytes = 1 << 20

// maxErrorBody is how much of an error response HTTPError keeps.
const maxErrorBody = 4 << 10

// Errors returned by Discover, wrapped with context; match them with errors.Is.
// A response with an error status is also an *HTTPError, which errors.As finds.
var (
	// ErrInvalidConfig is returned for a Config that cannot make a request; the
	// wrapping error names the field.
	ErrInvalidConfig = errors.New("discovery: invalid config")
	// ErrBadRequest is status 400: the request was malformed (the Python SDK's
	// DiscoveryInvalidRequestException). Retrying does not help.
	ErrBadRequest = errors.New("discovery: bad request")
	// ErrUnauthorized is status 401 or 403: the certificate is not allowed to
	// discover this thing (DiscoveryUnauthorizedException); its policy needs
	// greengrass:Discover for the thing.
	ErrUnauthorized = errors.New("discovery: unauthorized")
	// ErrNotFound is status 404: the thing does not exist or belongs to no group
	// (DiscoveryDataNotFoundException).
	ErrNotFound = errors.New("discovery: thing not found or in no group")
	// ErrThrottled is status 429: too many requests (DiscoveryThrottlingException);
	// retry later with backoff.
	ErrThrottled = errors.New("discovery: throttled")
	// ErrTimeout is returned when no response arrived within Config.Timeout or the
	// ctx's deadline (DiscoveryTimeoutException).
	ErrTimeout = errors.New("discovery: timed out")
	// ErrInvalidResponse is returned for a 200 response whose body is not a
	// discovery document, and by Parse and Group.CertPool.
	ErrInvalidResponse = errors.New("discovery: invalid response")
)

// HTTPError is a response with a status other than 200 (the Python SDK's
// DiscoveryFailure and its subclasses). errors.Is matches it against ErrBadRequest,
// ErrUnauthorized, ErrNotFound or ErrThrottled by status.
type HTTPError struct {
	// Thing is the thing name asked for.
	Thing string
	// StatusCode is the HTTP status code.
	StatusCode int
	// Body is the start of the response body (at most 4 KiB), which AWS fills with
	// a JSON error message.
	Body []byte
}

// Error returns the status and the start of the body.
func (e *HTTPError) Error() string {
	msg := fmt.Sprintf("discovery of %s: HTTP %d %s", e.Thing, e.StatusCode, http.StatusText(e.StatusCode))
	if body := strings.TrimSpace(string(e.Body)); body != "" {
		msg += ": " + body
	}
	return msg
}

// Is reports whether target is the sentinel for e's status.
func (e *HTTPError) Is(target error) bool {
	return target != nil && target == statusError(e.StatusCode)
}

// statusError is the sentinel for a status, or nil.
func statusError(code int) error {
	switch code {
	case http.StatusBadRequest:
		return ErrBadRequest
	case http.StatusUnauthorized, http.StatusForbidden:
		return ErrUnauthorized
	case http.StatusNotFound:
		return ErrNotFound
	case http.StatusTooManyRequests:
		return ErrThrottled
	}
	return nil
}

// Config says where and as whom to discover. Endpoint, ThingName and a client
// certificate are required.
type Config struct {
	// Endpoint is the discovery API's host[:port]: the Greengrass data endpoint
	// (greengrass-ats.iot.REGION.amazonaws.com) or, as the Python SDK v1 samples use,
	// the account's AWS IoT data endpoint. No port means 8443; on 443 ALPN
	// x-amzn-http-ca is offered.
	Endpoint string
	// ThingName is the thing to discover cores for: the device's own, unless its
	// policy allows greengrass:Discover on others.
	ThingName string

	// TLS is the base TLS configuration (roots, client certificate, server name). It
	// is cloned; nil means the system roots and no client certificate, plus what the
	// fields below add. MinVersion is raised to TLS 1.2 and ServerName defaults to
	// Endpoint's host.
	TLS *tls.Config
	// CAFile and CAPEM are PEM root certificates (AWS's root CA) that replace
	// TLS.RootCAs and the system roots; both may be given. Empty keeps TLS.RootCAs,
	// or the system roots.
	CAFile string
	CAPEM  []byte
	// CertFile and KeyFile are the device's certificate and private key in PEM.
	// Both or neither.
	CertFile, KeyFile string
	// Certificate is the device's certificate and key, instead of CertFile and
	// KeyFile. Nil keeps what TLS.Certificates holds.
	Certificate *tls.Certificate
	// ALPN lists the TLS application protocols to offer. Nil means x-amzn-http-ca on
	// port 443 and none on other ports.
	ALPN []string

	// Timeout bounds the whole request: connect, TLS handshake, response. Zero means
	// 120 s, the Python SDK's default (its sample sets 10 s).
	Timeout time.Duration
	// Dialer opens the TCP connection; set it to go through a proxy. Nil means a
	// net.Dialer.
	Dialer interface {
		DialContext(ctx context.Context, network, addr string) (net.Conn, error)
	}
}

// request is a validated Config.
type request struct {
	url     string
	thing   string
	tls     *tls.Config
	timeout time.Duration
	dialer  func(ctx context.Context, network, addr string) (net.Conn, error)
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
}

// validate checks c and builds the request.
func (c Config) validate() (*request, error) {
	if c.ThingName == "" {
		return nil, invalid("ThingName is empty")
	}
	if err := (shadowstate.ID{Thing: c.ThingName}).Validate(); err != nil {
		return nil, invalid("ThingName: %v", err)
	}
	host, port, err := splitEndpoint(c.Endpoint)
	if err != nil {
		return nil, err
	}
	if c.Timeout < 0 {
		return nil, invalid("Timeout is negative (%v)", c.Timeout)
	}
	r := &request{thing: c.ThingName, timeout: c.Timeout}
	if r.timeout == 0 {
		r.timeout = DefaultTimeout
	}
	hostPort := net.JoinHostPort(host, strconv.Itoa(port))
	r.url = "https://" + hostPort + "/greengrass/discover/thing/" + c.ThingName

	cfg := &tls.Config{}
	if c.TLS != nil {
		cfg = c.TLS.Clone()
	}
	cfg.MinVersion = max(cfg.MinVersion, tls.VersionTLS12)
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	if c.CAFile != "" || len(c.CAPEM) > 0 {
		pool := x509.NewCertPool()
		if c.CAFile != "" {
			pem, err := os.ReadFile(c.CAFile)
			if err != nil {
				return nil, invalid("CAFile: %v", err)
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, invalid("CAFile %s holds no PEM certificate", c.CAFile)
			}
		}
		if len(c.CAPEM) > 0 && !pool.AppendCertsFromPEM(c.CAPEM) {
			return nil, invalid("CAPEM holds no PEM certificate")
		}
		cfg.RootCAs = pool
	}
	switch {
	case (c.CertFile == "") != (c.KeyFile == ""):
		return nil, invalid("CertFile and KeyFile go together; got only one of them")
	case c.CertFile != "" && c.Certificate != nil:
		return nil, invalid("both CertFile/KeyFile and Certificate are set; use one")
	case c.CertFile != "":
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, invalid("CertFile/KeyFile: %v", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	case c.Certificate != nil:
		if len(c.Certificate.Certificate) == 0 || c.Certificate.PrivateKey == nil {
			return nil, invalid("Certificate has no certificate or no private key")
		}
		cfg.Certificates = []tls.Certificate{*c.Certificate}
	}
	if len(cfg.Certificates) == 0 && cfg.GetClientCertificate == nil {
		return nil, invalid("no client certificate: set CertFile and KeyFile, Certificate or TLS.Certificates (the discovery API accepts mutual TLS only)")
	}
	switch {
	case c.ALPN != nil:
		cfg.NextProtos = c.ALPN
	case port == 443:
		cfg.NextProtos = []string{ALPNProtocol}
	}
	r.tls = cfg
	if c.Dialer != nil {
		r.dialer = c.Dialer.DialContext
	} else {
		r.dialer = (&net.Dialer{}).DialContext
	}
	return r, nil
}

// splitEndpoint parses host[:port].
func splitEndpoint(ep string) (host string, port int, err error) {
	if ep == "" {
		return "", 0, invalid("Endpoint is empty; want the discovery host, e.g. greengrass-ats.iot.us-east-1.amazonaws.com")
	}
	if strings.Contains(ep, "/") {
		return "", 0, invalid("Endpoint %q: want host or host:port, no scheme or path", ep)
	}
	h, p, err := net.SplitHostPort(ep)
	if err != nil {
		// No port (or an IPv6 address without brackets and port).
		if ip := net.ParseIP(ep); ip != nil || !strings.Contains(ep, ":") {
			return ep, DefaultPort, nil
		}
		return "", 0, invalid("Endpoint %q: %v", ep, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 || h == "" {
		return "", 0, invalid("Endpoint %q: want host:port with a port from 1 to 65535", ep)
	}
	return h, n, nil
}

// Discover asks the discovery API which Greengrass groups and cores cfg.ThingName
// belongs to: GET /greengrass/discover/thing/THING over mutual TLS. A status other
// than 200 is an *HTTPError matching ErrBadRequest (400), ErrUnauthorized (401,
// 403), ErrNotFound (404) or ErrThrottled (429); no answer within cfg.Timeout (or
// ctx's deadline) is ErrTimeout; a Config that cannot make the request is
// ErrInvalidConfig, naming the field. Discover makes one request and does not retry.
func Discover(ctx context.Context, cfg Config) (*Info, error) {
	r, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeoutCause(ctx, r.timeout, fmt.Errorf("%w after %v", ErrTimeout, r.timeout))
	defer cancel()
	tr := &http.Transport{
		DialContext:         r.dialer,
		TLSClientConfig:     r.tls,
		TLSHandshakeTimeout: r.timeout,
		DisableKeepAlives:   true,
		Proxy:               nil, // an HTTP proxy cannot carry the client certificate; use Dialer
	}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url, nil)
	if err != nil {
		return nil, invalid("%v", err)
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return nil, requestError(ctx, r, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return nil, requestError(ctx, r, err)
	}
	if resp.StatusCode != http.StatusOK {
		if len(body) > maxErrorBody {
			body = body[:maxErrorBody]
		}
		return nil, &HTTPError{Thing: r.thing, StatusCode: resp.StatusCode, Body: body}
	}
	if len(body) > maxResponseBytes {
		return nil, fmt.Errorf("discovery of %s: %w: body larger than %d bytes", r.thing, ErrInvalidResponse, maxResponseBytes)
	}
	info, err := Parse(body)
	if err != nil {
		if ctx.Err() != nil {
			// The deadline cut the response short: say so, not that it was malformed.
			return nil, requestError(ctx, r, err)
		}
		return nil, fmt.Errorf("discovery of %s: %w", r.thing, err)
	}
	return info, nil
}

// requestError classifies a failed request: time-outs become ErrTimeout, a
// cancelled ctx stays context.Canceled.
func requestError(ctx context.Context, r *request, err error) error {
	var netErr net.Error
	switch {
	case errors.Is(context.Cause(ctx), ErrTimeout):
		return fmt.Errorf("discovery of %s: %w: %w", r.thing, context.Cause(ctx), err)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(ctx.Err(), context.DeadlineExceeded),
		errors.As(err, &netErr) && netErr.Timeout():
		return fmt.Errorf("discovery of %s: %w: %w", r.thing, ErrTimeout, err)
	}
	return fmt.Errorf("discovery of %s: %w", r.thing, err)
}
