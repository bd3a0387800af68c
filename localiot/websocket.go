package localiot

import (
	"bufio"
	"context"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mochi-mqtt/server/v2/listeners"
)

// maxUpgradeRequestBytes bounds the upgrade request line and headers; a presigned URL
// with a session token is a few KiB.
const maxUpgradeRequestBytes = 32 << 10

// wsSubprotocols are the WebSocket sub-protocols accepted, in order of preference.
var wsSubprotocols = []string{"mqtt", "mqttv3.1"}

// wsListener is a mochi listener serving MQTT over WebSocket at /mqtt, admitting an
// upgrade only when its URL carries a valid SigV4 presigned query. It reads the
// upgrade request and writes the response itself, so that one deadline covers the TLS
// handshake, the request and the response, and a refused connection is closed as soon
// as it is answered (net/http's server kept it open, waiting for another request).
type wsListener struct {
	id             string
	ln             net.Listener // bound before the broker starts
	tlsConfig      *tls.Config  // nil for ws://
	alpnMQTT       bool         // clients negotiating ALPN x-amzn-mqtt-ca speak MQTT, not WebSocket
	verifier       *sigV4Verifier
	upgradeTimeout time.Duration
	log            *slog.Logger
	refusals       *refusalLog
	conns          connTracker
	// dropClients, when set, replaces the CloseFn mochi passes to Close (see
	// connTracker.end).
	dropClients listeners.CloseFn
}

var _ listeners.Listener = (*wsListener)(nil)

func newWSListener(id string, ln net.Listener, opts *WebSocketListener, refusals *refusalLog, drop listeners.CloseFn) *wsListener {
	l := &wsListener{
		id:             id,
		ln:             ln,
		refusals:       refusals,
		dropClients:    drop,
		verifier:       newSigV4Verifier(opts),
		upgradeTimeout: opts.UpgradeTimeout,
	}
	if l.upgradeTimeout == 0 {
		l.upgradeTimeout = defaultUpgradeTimeout
	}
	if opts.Certificate != nil {
		wsConfig := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{*opts.Certificate}, NextProtos: []string{"http/1.1"}}
		l.tlsConfig = wsConfig
		if auth := opts.MQTTOverALPN; auth != nil {
			// crypto/tls fails a handshake when the client offers ALPN protocols and
			// none is in NextProtos, and a certificate is asked for of every client or
			// of none: so the configuration is chosen per client, from what it offers.
			mqttConfig := &tls.Config{
				MinVersion:   tls.VersionTLS12,
				Certificates: []tls.Certificate{*opts.Certificate},
				ClientAuth:   tls.RequireAndVerifyClientCert,
				ClientCAs:    auth.ClientCAs,
				NextProtos:   []string{alpnAmazonMQTT},
			}
			l.alpnMQTT = true
			l.tlsConfig = &tls.Config{
				MinVersion: tls.VersionTLS12,
				GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
					if slices.Contains(hello.SupportedProtos, alpnAmazonMQTT) {
						return mqttConfig, nil
					}
					return wsConfig, nil
				},
			}
		}
	}
	return l
}

// ID returns the listener's ID.
func (l *wsListener) ID() string { return l.id }

// Address returns the bound address.
func (l *wsListener) Address() string { return l.ln.Addr().String() }

// Protocol returns "ws".
func (l *wsListener) Protocol() string { return "ws" }

// Init records the broker's logger; the socket is already bound.
func (l *wsListener) Init(log *slog.Logger) error {
	l.log = log
	return nil
}

// Serve accepts connections until Close, handing each admitted WebSocket to establish.
func (l *wsListener) Serve(establish listeners.EstablishFn) {
	acceptLoop(l.ln, &l.conns, l.log, func(conn net.Conn) { l.serveConn(conn, establish) })
}

// Close stops accepting, has the broker disconnect this listener's clients, and
// closes every connection still open, returning once their goroutines have ended.
func (l *wsListener) Close(closeClients listeners.CloseFn) {
	l.conns.close()
	_ = l.ln.Close()
	l.conns.end(l.id, closeClients, l.dropClients)
}

// upgradeError is why an upgrade failed: the reason class (see refusedTimeout and the
// others; "" when the client is not to blame), the HTTP status answered (0 for none,
// when the connection is just closed), extra response header lines and the cause.
type upgradeError struct {
	reason string
	status int
	header string // each line ending in CRLF
	err    error
}

// badRequest refuses an upgrade request with status.
func badRequest(status int, format string, args ...any) *upgradeError {
	return &upgradeError{reason: refusedBadRequest, status: status, err: fmt.Errorf(format, args...)}
}

// serveConn runs one connection: TLS handshake, upgrade request and response within
// upgradeTimeout of its acceptance, then MQTT until either side ends it. A client
// that negotiated ALPN x-amzn-mqtt-ca (alpnMQTT only) goes straight to MQTT, as a
// client of the mutual-TLS listener.
func (l *wsListener) serveConn(raw net.Conn, establish listeners.EstablishFn) {
	defer l.conns.done(raw)
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(l.upgradeTimeout))
	conn := raw
	if l.tlsConfig != nil {
		tc := tls.Server(raw, l.tlsConfig)
		if err := tc.HandshakeContext(context.Background()); err != nil {
			l.refusals.refused(l.id, tlsRefusalReason(err), raw.RemoteAddr().String(), err)
			return
		}
		if l.alpnMQTT && tc.ConnectionState().NegotiatedProtocol == alpnAmazonMQTT {
			// The broker identifies a client by the ID of the listener it came through;
			// this one authenticated as the mutual-TLS listener's clients do.
			if oc, ok := raw.(*outboundConn); ok {
				oc.owner.relabel(oc, listenerTLS)
			}
			// The broker replaces this deadline with the keep-alive once CONNECT is read.
			_ = raw.SetDeadline(time.Now().Add(connectTimeout))
			if err := establish(listenerTLS, tc); err != nil {
				l.log.Debug("client ended", "remote", raw.RemoteAddr().String(), "alpn", alpnAmazonMQTT, "error", err)
			}
			return
		}
		conn = tc
	}
	limit := &capReader{r: conn, left: maxUpgradeRequestBytes}
	br := bufio.NewReader(limit)
	ws, cred, uerr := l.upgrade(conn, br)
	if uerr != nil {
		if uerr.status != 0 {
			writeRefusal(conn, uerr.status, uerr.header)
		}
		if uerr.reason == "" {
			l.log.Debug("websocket upgrade failed", "remote", raw.RemoteAddr().String(), "error", uerr.err)
			return
		}
		var status []any
		if uerr.status != 0 {
			status = []any{"status", uerr.status}
		}
		l.refusals.refused(l.id, uerr.reason, raw.RemoteAddr().String(), uerr.err, status...)
		return
	}
	limit.left = -1
	ws.br = br
	// The broker replaces this deadline with the keep-alive once CONNECT is read.
	_ = conn.SetDeadline(time.Now().Add(connectTimeout))
	if err := establish(l.id, ws); err != nil {
		l.log.Debug("client ended", "remote", raw.RemoteAddr().String(), "access_key_id", cred.AccessKeyID, "error", err)
	}
}

// upgrade reads the upgrade request from br and, if it is admitted, writes the 101
// response to conn and returns the WebSocket. Otherwise it returns why not, having
// written nothing. Bytes the client sent after the request (a client may send its
// CONNECT at once) stay in br for the broker.
func (l *wsListener) upgrade(conn net.Conn, br *bufio.Reader) (*wsConn, Credential, *upgradeError) {
	r, err := http.ReadRequest(br)
	if err != nil {
		var ne net.Error
		switch {
		case errors.As(err, &ne) && ne.Timeout():
			return nil, Credential{}, &upgradeError{reason: refusedTimeout, err: fmt.Errorf("upgrade request not complete within %v of connecting", l.upgradeTimeout)}
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			return nil, Credential{}, &upgradeError{reason: refusedBadRequest, err: errors.New("connection closed before the upgrade request was complete")}
		case errors.Is(err, errRequestTooLarge):
			return nil, Credential{}, badRequest(http.StatusRequestHeaderFieldsTooLarge, "upgrade request larger than %d bytes", maxUpgradeRequestBytes)
		}
		return nil, Credential{}, badRequest(http.StatusBadRequest, "malformed HTTP request: %v", err)
	}
	if r.URL.Path != websocketPath {
		return nil, Credential{}, badRequest(http.StatusNotFound, "path %q", r.URL.Path)
	}
	if r.Method != http.MethodGet {
		e := badRequest(http.StatusMethodNotAllowed, "method %s", r.Method)
		e.header = "Allow: GET\r\n"
		return nil, Credential{}, e
	}
	cred, err := l.verifier.verify(r)
	if err != nil {
		return nil, Credential{}, &upgradeError{reason: refusedSigV4, status: http.StatusForbidden, err: err}
	}
	if !headerHasToken(r.Header, "Connection", "upgrade") || !headerHasToken(r.Header, "Upgrade", "websocket") {
		return nil, Credential{}, badRequest(http.StatusBadRequest, "not a WebSocket upgrade: Connection or Upgrade header missing")
	}
	if !headerHasToken(r.Header, "Sec-WebSocket-Version", "13") {
		// RFC 6455 §4.2.2: name the versions understood.
		e := badRequest(http.StatusUpgradeRequired, "WebSocket version %q, want 13", r.Header.Get("Sec-WebSocket-Version"))
		e.header = "Sec-WebSocket-Version: 13\r\n"
		return nil, Credential{}, e
	}
	keys := r.Header.Values("Sec-WebSocket-Key")
	if len(keys) != 1 || !validWebSocketKey(keys[0]) {
		return nil, Credential{}, badRequest(http.StatusBadRequest, "Sec-WebSocket-Key missing, repeated or not base64")
	}
	key := strings.TrimSpace(keys[0])
	protocol := selectSubprotocol(r.Header)
	if err := writeUpgradeResponse(conn, key, protocol); err != nil {
		return nil, Credential{}, &upgradeError{err: fmt.Errorf("writing the upgrade response: %w", err)}
	}
	who := principal{operator: true}
	if cred.Thing != "" {
		who = principal{thing: cred.Thing}
	}
	return &wsConn{Conn: conn, who: who}, cred, nil
}

// validWebSocketKey reports whether key is non-empty standard base64. RFC 6455
// §4.2.1 asks for the base64 of 16 bytes, but the AWS IoT Device SDK for Python v1
// sends the base64 of 128 random bytes, and AWS IoT accepts it; the key only feeds
// Sec-WebSocket-Accept, whatever its length.
func validWebSocketKey(key string) bool {
	key = strings.TrimSpace(key)
	_, err := base64.StdEncoding.DecodeString(key)
	return key != "" && err == nil
}

// headerHasToken reports whether the comma-separated values of header name hold token,
// compared case-insensitively (RFC 9110 §5.6.1).
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// selectSubprotocol returns the first of wsSubprotocols the client offers, "" if none.
func selectSubprotocol(h http.Header) string {
	for _, want := range wsSubprotocols {
		if headerHasToken(h, "Sec-WebSocket-Protocol", want) {
			return want
		}
	}
	return ""
}

// wsAcceptGUID is RFC 6455's fixed GUID for Sec-WebSocket-Accept (§1.3).
const wsAcceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// writeUpgradeResponse writes the 101 response in one write, its header names in lower
// case: the AWS IoT Device SDK for Python v1 reads the response with a single read and
// looks for "sec-websocket-accept: " case-sensitively. Header names are
// case-insensitive (RFC 9110 §5.1), so other clients read it as before.
func writeUpgradeResponse(conn net.Conn, key, protocol string) error {
	sum := sha1.Sum([]byte(key + wsAcceptGUID))
	var b strings.Builder
	b.WriteString("HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: ")
	b.WriteString(base64.StdEncoding.EncodeToString(sum[:]))
	b.WriteString("\r\n")
	if protocol != "" {
		b.WriteString("sec-websocket-protocol: " + protocol + "\r\n")
	}
	b.WriteString("\r\n")
	_, err := io.WriteString(conn, b.String())
	return err
}

// writeRefusal answers an upgrade with an HTTP error and says that the connection
// closes; the caller closes it.
func writeRefusal(conn net.Conn, status int, header string) {
	body := http.StatusText(status) + "\n"
	_, _ = fmt.Fprintf(conn, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n%s\r\n%s",
		status, http.StatusText(status), len(body), header, body)
}

// errRequestTooLarge ends an upgrade request longer than maxUpgradeRequestBytes.
var errRequestTooLarge = errors.New("upgrade request too large")

// capReader reads from r, failing with errRequestTooLarge once left bytes have been
// read; left < 0 means no limit.
type capReader struct {
	r    io.Reader
	left int64
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.left < 0 {
		return c.r.Read(p)
	}
	if c.left == 0 {
		return 0, errRequestTooLarge
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

// WebSocket opcodes (RFC 6455 §5.2).
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xa
)

// WebSocket close codes (RFC 6455 §7.4.1).
const (
	closeProtocolError   = 1002
	closeUnsupportedData = 1003
)

// errTextFrame ends a WebSocket connection that sends a text frame: MQTT travels in
// binary frames only.
var errTextFrame = errors.New("websocket: text frame")

// errWSProtocol ends a WebSocket connection that breaks RFC 6455's framing rules.
var errWSProtocol = errors.New("websocket: protocol error")

// wsConn presents the server side of a WebSocket (RFC 6455) as the byte stream the
// broker reads MQTT from: reads run across binary frames and messages, each write is
// one binary frame. Pings are answered, a close is echoed and ends the stream. It
// carries the principal the upgrade authenticated.
type wsConn struct {
	net.Conn // the connection (a *tls.Conn for wss://): writes, deadlines, addresses

	br  *bufio.Reader // reads the connection, holding any bytes sent with the upgrade
	who principal

	// The reader's state; only the broker's reading goroutine uses it.
	left       uint64 // payload bytes of the current data frame not yet read
	mask       [4]byte
	maskAt     int  // position in mask of the next payload byte
	fragmented bool // a binary message has begun whose final frame is still to come

	wm sync.Mutex // one frame written at a time
}

// Read reads MQTT bytes from the payload of binary frames, handling control frames in
// between.
func (c *wsConn) Read(p []byte) (int, error) {
	for c.left == 0 {
		if err := c.nextFrame(); err != nil {
			return 0, err
		}
	}
	if uint64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.br.Read(p)
	for i := range p[:n] {
		p[i] ^= c.mask[c.maskAt&3]
		c.maskAt++
	}
	c.left -= uint64(n)
	return n, err
}

// nextFrame reads the next frame's header. A data frame's payload is left for Read; a
// control frame is read and handled here.
func (c *wsConn) nextFrame() error {
	var hdr [14]byte
	if _, err := io.ReadFull(c.br, hdr[:2]); err != nil {
		return err
	}
	fin, rsv, op := hdr[0]&0x80 != 0, hdr[0]&0x70, hdr[0]&0x0f
	if rsv != 0 {
		return c.protocolError("reserved bits set; no extension was negotiated")
	}
	if hdr[1]&0x80 == 0 {
		return c.protocolError("unmasked frame from the client") // §5.1
	}
	n := uint64(hdr[1] & 0x7f)
	ext := 0
	switch n {
	case 126:
		ext = 2
	case 127:
		ext = 8
	}
	if _, err := io.ReadFull(c.br, hdr[2:2+ext+4]); err != nil {
		return err
	}
	switch ext {
	case 2:
		n = uint64(hdr[2])<<8 | uint64(hdr[3])
	case 8:
		n = 0
		for _, b := range hdr[2:10] {
			n = n<<8 | uint64(b)
		}
		if n>>63 != 0 {
			return c.protocolError("payload length with the high bit set")
		}
	}
	copy(c.mask[:], hdr[2+ext:])
	c.maskAt = 0

	switch op {
	case opBinary, opContinuation:
		if op == opBinary && c.fragmented {
			return c.protocolError("new message before the last one ended")
		}
		if op == opContinuation && !c.fragmented {
			return c.protocolError("continuation frame outside a message")
		}
		c.fragmented = !fin
		c.left = n
		return nil
	case opText:
		c.closeWith(closeUnsupportedData)
		return errTextFrame
	case opClose, opPing, opPong:
		if !fin || n > 125 {
			return c.protocolError("fragmented or oversized control frame")
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(c.br, payload); err != nil {
			return err
		}
		for i := range payload {
			payload[i] ^= c.mask[i&3]
		}
		switch op {
		case opPing:
			return c.writeFrame(opPong, payload)
		case opClose:
			if len(payload) == 1 {
				return c.protocolError("close frame with a one-byte payload")
			}
			// Echo the status code, as RFC 6455 §5.5.1 suggests, and end the stream.
			_ = c.writeFrame(opClose, payload[:min(len(payload), 2)])
			return io.EOF
		}
		return nil // a pong needs no answer
	}
	return c.protocolError(fmt.Sprintf("reserved opcode %#x", op))
}

// protocolError closes the WebSocket with status 1002 and returns the error ending
// the stream.
func (c *wsConn) protocolError(why string) error {
	c.closeWith(closeProtocolError)
	return fmt.Errorf("%w: %s", errWSProtocol, why)
}

// closeWith sends a close frame with code, best effort.
func (c *wsConn) closeWith(code int) {
	_ = c.writeFrame(opClose, []byte{byte(code >> 8), byte(code)})
}

// writeFrame writes one final, unmasked frame (servers do not mask, §5.1) in one write.
func (c *wsConn) writeFrame(op byte, payload []byte) error {
	n := len(payload)
	frame := make([]byte, 0, n+10)
	frame = append(frame, 0x80|op)
	switch {
	case n < 126:
		frame = append(frame, byte(n))
	case n <= 0xffff:
		frame = append(frame, 126, byte(n>>8), byte(n))
	default:
		frame = append(frame, 127)
		for shift := 56; shift >= 0; shift -= 8 {
			frame = append(frame, byte(uint64(n)>>shift))
		}
	}
	frame = append(frame, payload...)
	c.wm.Lock()
	defer c.wm.Unlock()
	_, err := c.Conn.Write(frame)
	return err
}

// Write sends p as one binary frame.
func (c *wsConn) Write(p []byte) (int, error) {
	if err := c.writeFrame(opBinary, p); err != nil {
		return 0, err
	}
	return len(p), nil
}
