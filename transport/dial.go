package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/gorilla/websocket"

	"github.com/shadowsync/shadowsync/internal/quickack"
)

// dialer opens the network connection of one connect attempt. It is immutable after
// construction and safe for concurrent use.
type dialer struct {
	s     *settings
	creds *credentialSource
	now   func() time.Time
}

// dialed is the result of one successful dial.
type dialed struct {
	conn  *idleConn
	creds *aws.Credentials // the credentials that signed a WebSocket URL, else nil
}

// dial connects to the endpoint: TCP, TLS (mqtts) or a SigV4-presigned WebSocket
// (ws, wss), signed afresh with credentials asked for now. The returned connection
// is wrapped to enforce the keep-alive once armed.
func (d *dialer) dial(ctx context.Context) (dialed, error) {
	s := d.s
	var (
		conn     net.Conn
		creds    *aws.Credentials
		err      error
		quickAck func()
	)
	if s.tls != nil {
		if err := checkClientCert(s.tls, d.now()); err != nil {
			return dialed{}, err
		}
	}
	switch {
	case s.ep.websocket():
		conn, creds, err = d.dialWebSocket(ctx)
	default:
		conn, err = s.Dialer.DialContext(ctx, "tcp", s.ep.addr())
		if err != nil {
			return dialed{}, fmt.Errorf("dial %s: %w", s.ep.addr(), err)
		}
		quickAck = quickack.Func(conn)
		if s.tls != nil {
			tc := tls.Client(conn, s.tls)
			if err = tc.HandshakeContext(ctx); err != nil {
				_ = conn.Close()
				return dialed{}, fmt.Errorf("tls handshake with %s: %w", s.ep.addr(), classifyTLS(err))
			}
			conn = tc
		}
	}
	if err != nil {
		return dialed{}, err
	}
	idle := s.keepAlive + s.keepAlive/2
	return dialed{conn: newIdleConn(conn, idle, s.OperationTimeout, s.ClientID, quickAck), creds: creds}, nil
}

// dialWebSocket presigns the URL and performs the WebSocket upgrade with
// sub-protocol "mqtt".
func (d *dialer) dialWebSocket(ctx context.Context) (net.Conn, *aws.Credentials, error) {
	s := d.s
	creds, err := d.creds.retrieve(ctx)
	if err != nil {
		return nil, nil, err
	}
	s.Logger.Debug("signing websocket URL", "credentials", loggedCredentials(creds), "region", s.Region)
	signed := presignURL(s.ep.url(), creds, s.Region, d.now())
	wd := websocket.Dialer{
		NetDialContext:   s.Dialer.DialContext,
		TLSClientConfig:  s.tls,
		HandshakeTimeout: s.ConnectTimeout,
		Subprotocols:     []string{"mqtt"},
	}
	ws, resp, err := wd.DialContext(ctx, signed, nil)
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		where := s.ep.String()
		if resp != nil {
			switch resp.StatusCode {
			case http.StatusUnauthorized, http.StatusForbidden:
				return nil, nil, fmt.Errorf("%w: websocket upgrade to %s answered %s: check the credentials (access key %s), region %q and clock",
					ErrNotAuthorized, where, resp.Status, creds.AccessKeyID, s.Region)
			}
			return nil, nil, fmt.Errorf("websocket upgrade to %s answered %s", where, resp.Status)
		}
		return nil, nil, fmt.Errorf("websocket dial %s: %w", where, classifyTLS(err))
	}
	return &wsConn{ws: ws}, &creds, nil
}

// checkClientCert refuses a client certificate that has expired or is not valid yet,
// before the server does so with a less helpful alert.
func checkClientCert(cfg *tls.Config, now time.Time) error {
	for _, c := range cfg.Certificates {
		leaf := c.Leaf
		if leaf == nil {
			continue
		}
		switch {
		case now.After(leaf.NotAfter):
			return fmt.Errorf("%w: client certificate %q expired at %s", ErrClientCertificate, leaf.Subject.CommonName, leaf.NotAfter.UTC().Format(time.RFC3339))
		case now.Before(leaf.NotBefore):
			return fmt.Errorf("%w: client certificate %q is not valid before %s", ErrClientCertificate, leaf.Subject.CommonName, leaf.NotBefore.UTC().Format(time.RFC3339))
		}
	}
	return nil
}

// classifyTLS marks certificate failures: the server's certificate not verifying
// (ErrServerCertificate) and the server refusing ours with an alert
// (ErrClientCertificate). Other errors pass unchanged.
func classifyTLS(err error) error {
	var (
		verr     *tls.CertificateVerificationError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
	)
	switch {
	case errors.As(err, &hostname):
		return fmt.Errorf("%w: wrong host name: %w", ErrServerCertificate, err)
	case errors.As(err, &unknown):
		return fmt.Errorf("%w: signed by an unknown authority (check CAFile or TLS.RootCAs): %w", ErrServerCertificate, err)
	case errors.As(err, &invalid), errors.As(err, &verr):
		return fmt.Errorf("%w: %w", ErrServerCertificate, err)
	}
	if msg := err.Error(); strings.Contains(msg, "remote error: tls:") {
		if strings.Contains(msg, "certificate") {
			return fmt.Errorf("%w: the server refused it during the TLS handshake (expired, revoked, or not signed by a CA it trusts): %w", ErrClientCertificate, err)
		}
	}
	return err
}
