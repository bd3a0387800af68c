package localiot

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/shadowsync/shadowsync/shadowstate"
)

// Defaults of DiscoveryListener.
const (
	// DefaultDiscoveryGroupID is the group ID localiot's discovery answers with.
	DefaultDiscoveryGroupID = "localiot"
	// DefaultDiscoveryCoreARN is the thing ARN of localiot's one core.
	DefaultDiscoveryCoreARN = "arn:aws:iot:us-east-1:000000000000:thing/localiot"
)

// discoveryPathPrefix is the discovery API's path, followed by the thing name.
const discoveryPathPrefix = "/greengrass/discover/thing/"

// DiscoveryListener configures Greengrass discovery (AWS IoT Greengrass V1's
// discovery API): HTTPS, TLS 1.2 or later, answering GET
// /greengrass/discover/thing/THING with one group whose one core is this server,
// reachable at its mutual-TLS MQTT listener and verified with CAs. ALPN
// "x-amzn-http-ca" is accepted, so clients set up for AWS's port 443 work.
//
// Who may discover what mirrors an AWS IoT policy granting greengrass:Discover on
// the thing's own ARN: no client certificate, or one that ClientCAs does not
// verify, is 401; a thing's certificate (subject CN = thing) may discover that thing only, any
// other is 403; an operator certificate may discover any thing. A thing not in
// Things is 404, an invalid thing name 400. CertSet.DiscoveryListener builds one
// from generated certificates.
type DiscoveryListener struct {
	// Addr is the host:port to listen on. "" means 127.0.0.1:0.
	Addr string
	// Certificate is the server's certificate and key. Required.
	Certificate tls.Certificate
	// ClientCAs verifies client certificates. Required.
	ClientCAs *x509.CertPool
	// Operators are the client certificates that may discover any thing, matched
	// exactly; the operators of the other listeners may too. Nil means none besides
	// theirs.
	Operators []*x509.Certificate
	// CAs are returned as the group's CAs: what verifies the server certificate of
	// the MQTT listener (Options.TLS.Certificate). Required.
	CAs []*x509.Certificate
	// Things are the things in the group; discovering any other is 404. Nil or empty
	// means every thing.
	Things []string
	// Connectivity are the host:port addresses advertised for the core, in order.
	// Nil means the TLS listener's bound address (Options.TLS, then required); when
	// that is an unspecified address (0.0.0.0, ::), the host the client reached the
	// discovery listener at.
	Connectivity []string
	// GroupID is the group's GGGroupId. "" means DefaultDiscoveryGroupID.
	GroupID string
	// CoreARN is the core's thingArn. "" means DefaultDiscoveryCoreARN.
	CoreARN string
}

// DiscoveryListener returns a discovery listener on addr ("" means 127.0.0.1:0)
// that serves the set's server certificate, accepts client certificates signed by
// its CA, lets the operator certificate discover any thing, returns the CA as the
// group CA, and knows the set's things (every thing, when the set has none).
func (c *CertSet) DiscoveryListener(addr string) *DiscoveryListener {
	var things []string
	for name := range c.Things {
		things = append(things, name)
	}
	slices.Sort(things)
	return &DiscoveryListener{
		Addr:        addr,
		Certificate: c.Server,
		ClientCAs:   c.Pool,
		Operators:   []*x509.Certificate{c.Operator.Leaf},
		CAs:         []*x509.Certificate{c.CA},
		Things:      things,
	}
}

// validate checks d against the rest of the options.
func (d *DiscoveryListener) validate(o *Options) error {
	switch {
	case len(d.Certificate.Certificate) == 0 || d.Certificate.PrivateKey == nil:
		return fmt.Errorf("%w: Discovery.Certificate is required", ErrInvalidOptions)
	case d.ClientCAs == nil:
		return fmt.Errorf("%w: Discovery.ClientCAs is required", ErrInvalidOptions)
	case len(d.CAs) == 0 || slices.Contains(d.CAs, nil):
		return fmt.Errorf("%w: Discovery.CAs is required (the CA clients verify the MQTT listener with)", ErrInvalidOptions)
	case d.Connectivity == nil && o.TLS == nil:
		return fmt.Errorf("%w: Discovery needs the TLS listener (Options.TLS) to advertise, or Discovery.Connectivity", ErrInvalidOptions)
	}
	for i, t := range d.Things {
		if err := (shadowstate.ID{Thing: t}).Validate(); err != nil {
			return fmt.Errorf("%w: Discovery.Things[%d]: %w", ErrInvalidOptions, i, err)
		}
	}
	for i, a := range d.Connectivity {
		if _, _, err := splitPort(a); err != nil {
			return fmt.Errorf("%w: Discovery.Connectivity[%d] %q: %v", ErrInvalidOptions, i, a, err)
		}
	}
	return nil
}

// splitPort splits host:port, checking the port.
func splitPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("port %q is not from 1 to 65535", p)
	}
	return host, port, nil
}

// The discovery response document.
type (
	discoveryDoc struct {
		Groups []discoveryGroup `json:"GGGroups"`
	}
	discoveryGroup struct {
		ID    string          `json:"GGGroupId"`
		Cores []discoveryCore `json:"Cores"`
		CAs   []string        `json:"CAs"`
	}
	discoveryCore struct {
		ThingARN     string                  `json:"thingArn"`
		Connectivity []discoveryConnectivity `json:"Connectivity"`
	}
	discoveryConnectivity struct {
		ID          string `json:"Id"`
		HostAddress string `json:"HostAddress"`
		PortNumber  int    `json:"PortNumber"`
		Metadata    string `json:"Metadata"`
	}
)

// discoveryHandler answers discovery requests.
type discoveryHandler struct {
	conf      *DiscoveryListener
	operators [][]byte // DER of every listener's operator certificates
	tlsAddr   string   // the TLS listener's bound address, "" when none
	log       *slog.Logger
}

func (h *discoveryHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	thing, ok := strings.CutPrefix(r.URL.Path, discoveryPathPrefix)
	if !ok {
		h.fail(w, r, http.StatusNotFound, "no such resource", "")
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		h.fail(w, r, http.StatusMethodNotAllowed, "use GET", thing)
		return
	}
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		h.fail(w, r, http.StatusUnauthorized, "a client certificate is required", thing)
		return
	}
	if err := h.verify(r.TLS.PeerCertificates); err != nil {
		h.fail(w, r, http.StatusUnauthorized, "client certificate not trusted: "+err.Error(), thing)
		return
	}
	if err := (shadowstate.ID{Thing: thing}).Validate(); err != nil {
		h.fail(w, r, http.StatusBadRequest, err.Error(), thing)
		return
	}
	cert := r.TLS.PeerCertificates[0]
	operator := slices.ContainsFunc(h.operators, func(der []byte) bool { return string(der) == string(cert.Raw) })
	if !operator && cert.Subject.CommonName != thing {
		h.fail(w, r, http.StatusForbidden, fmt.Sprintf("certificate of %q may not discover %q", cert.Subject.CommonName, thing), thing)
		return
	}
	if len(h.conf.Things) > 0 && !slices.Contains(h.conf.Things, thing) {
		h.fail(w, r, http.StatusNotFound, fmt.Sprintf("thing %q is in no group", thing), thing)
		return
	}
	doc, err := h.document(r)
	if err != nil {
		h.fail(w, r, http.StatusInternalServerError, err.Error(), thing)
		return
	}
	body, err := json.Marshal(doc)
	if err != nil {
		h.fail(w, r, http.StatusInternalServerError, err.Error(), thing)
		return
	}
	h.log.Debug("discovery answered", "thing", thing, "operator", operator)
	writeDiscoveryJSON(w, http.StatusOK, body)
}

// writeDiscoveryJSON answers with status and a JSON body. The body's length is sent
// under the header name in lower case too, as AWS's endpoint sends it: the AWS IoT
// Device SDK for Python v1's DiscoveryInfoProvider reads the response by hand and
// finds the length only by the exact text "content-length: ". HTTP clients that
// canonicalise names see one length, given twice with the same value, which HTTP
// allows.
func writeDiscoveryJSON(w http.ResponseWriter, status int, body []byte) {
	n := strconv.Itoa(len(body))
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", n)
	w.Header()["content-length"] = []string{n}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// verify checks the client's chain against ClientCAs. The TLS handshake only asks
// for a certificate, so that a missing or untrusted one gets AWS's 401 rather than a
// failed handshake.
func (h *discoveryHandler) verify(chain []*x509.Certificate) error {
	opts := x509.VerifyOptions{Roots: h.conf.ClientCAs, Intermediates: x509.NewCertPool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	for _, c := range chain[1:] {
		opts.Intermediates.AddCert(c)
	}
	_, err := chain[0].Verify(opts)
	return err
}

// document is the response: one group, one core, this server's addresses.
func (h *discoveryHandler) document(r *http.Request) (discoveryDoc, error) {
	addrs := h.conf.Connectivity
	if addrs == nil {
		host, port, err := net.SplitHostPort(h.tlsAddr)
		if err != nil {
			return discoveryDoc{}, fmt.Errorf("TLS listener address %q: %v", h.tlsAddr, err)
		}
		if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
			// Bound to every address: advertise the one this client reached us at.
			if local, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
				if lh, _, err := net.SplitHostPort(local.String()); err == nil {
					host = lh
				}
			}
		}
		addrs = []string{net.JoinHostPort(host, port)}
	}
	core := discoveryCore{ThingARN: orString(h.conf.CoreARN, DefaultDiscoveryCoreARN)}
	for i, a := range addrs {
		host, port, err := splitPort(a)
		if err != nil {
			return discoveryDoc{}, err
		}
		core.Connectivity = append(core.Connectivity, discoveryConnectivity{ID: "localiot-" + strconv.Itoa(i), HostAddress: host, PortNumber: port})
	}
	group := discoveryGroup{ID: orString(h.conf.GroupID, DefaultDiscoveryGroupID), Cores: []discoveryCore{core}}
	for _, ca := range h.conf.CAs {
		group.CAs = append(group.CAs, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw})))
	}
	return discoveryDoc{Groups: []discoveryGroup{group}}, nil
}

// fail answers with status and an AWS-style JSON error body.
func (h *discoveryHandler) fail(w http.ResponseWriter, r *http.Request, status int, msg, thing string) {
	h.log.Info("discovery refused", "thing", thing, "status", status, "reason", msg, "remote", r.RemoteAddr)
	body, _ := json.Marshal(struct {
		Message string `json:"message"`
	}{msg})
	writeDiscoveryJSON(w, status, body)
}

func orString(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// discoveryServer is a running discovery listener.
type discoveryServer struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
}

// startDiscovery binds the discovery listener and serves it on a goroutine of its
// own until close.
func startDiscovery(ctx context.Context, d *DiscoveryListener, operators [][]byte, tlsAddr string, log *slog.Logger) (*discoveryServer, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addrOrDefault(d.Addr))
	if err != nil {
		return nil, err
	}
	h := &discoveryHandler{conf: d, operators: operators, tlsAddr: tlsAddr, log: log.With("listener", "discovery")}
	srv := &http.Server{
		Handler: h,
		TLSConfig: &tls.Config{
			MinVersion:   tls.VersionTLS12,
			Certificates: []tls.Certificate{d.Certificate},
			// Asked for and verified by the handler, which answers 401 without one.
			ClientAuth: tls.RequestClientCert,
			ClientCAs:  d.ClientCAs,
			NextProtos: []string{"http/1.1", alpnAmazonHTTP},
		},
		ReadHeaderTimeout: connectTimeout,
		IdleTimeout:       time.Minute,
		ErrorLog:          slog.NewLogLogger(log.With("listener", "discovery").Handler(), slog.LevelDebug),
	}
	// Go's server closes a connection whose negotiated protocol it has no handler
	// for; a client that offers x-amzn-http-ca (as on AWS's port 443) speaks
	// HTTP/1.1 after the handshake.
	srv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){
		alpnAmazonHTTP: func(outer *http.Server, c *tls.Conn, h http.Handler) {
			inner := &http.Server{Handler: h, ReadHeaderTimeout: outer.ReadHeaderTimeout, IdleTimeout: outer.IdleTimeout, ErrorLog: outer.ErrorLog}
			l := newOneConnListener(tlsStateConn{c})
			inner.ConnState = func(_ net.Conn, st http.ConnState) {
				if st == http.StateClosed || st == http.StateHijacked {
					l.Close()
				}
			}
			_ = inner.Serve(l)
		},
	}
	s := &discoveryServer{srv: srv, ln: ln, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		if err := srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("discovery listener stopped", "error", err)
		}
	}()
	return s, nil
}

// close stops the listener and every connection, and waits for Serve to return.
func (s *discoveryServer) close() {
	if s == nil {
		return
	}
	_ = s.srv.Close()
	<-s.done
}

// tlsStateConn hides a *tls.Conn whose handshake is done from http.Server, which
// would look at its negotiated protocol again, while still giving requests their
// TLS state.
type tlsStateConn struct{ *tls.Conn }

// ConnectionState returns the TLS state for Request.TLS.
func (c tlsStateConn) ConnectionState() tls.ConnectionState { return c.Conn.ConnectionState() }

// oneConnListener hands out one connection, then blocks until closed.
type oneConnListener struct {
	conn   chan net.Conn
	addr   net.Addr
	closed chan struct{}
	once   sync.Once
}

func newOneConnListener(c net.Conn) *oneConnListener {
	l := &oneConnListener{conn: make(chan net.Conn, 1), addr: c.LocalAddr(), closed: make(chan struct{})}
	l.conn <- c
	return l
}

// Accept returns the connection once, then net.ErrClosed after Close.
func (l *oneConnListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conn:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

// Close makes Accept return net.ErrClosed; it does not close the connection.
func (l *oneConnListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

// Addr returns the connection's local address.
func (l *oneConnListener) Addr() net.Addr { return l.addr }
