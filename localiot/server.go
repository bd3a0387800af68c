package localiot

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"
)

// ErrStarted is returned by Start when the server has been started before; a Server
// runs once.
var ErrStarted = errors.New("localiot: server already started")

// Server is a local stand-in for AWS IoT Core's message broker: an embedded MQTT
// broker with plain, mutual-TLS and SigV4 WebSocket listeners, AWS IoT's policy-like
// authorisation and its broker limits. Create it with New and run it with Start. Its
// methods are safe for concurrent use.
type Server struct {
	opts   Options
	broker *mqtt.Server
	gate   *gateHook
	shadow *shadowService
	jobs   *jobsService // the Jobs service; see jobs_*.go
	conns  *outboundConns

	console *console // the web console; nil without Options.Console

	refusals *refusalLog // refused connections, logged and counted

	started atomic.Bool
	ready   chan struct{} // closed once every listener is bound
	mu      sync.Mutex    // guards endpoints
	eps     Endpoints
}

// Endpoints are the URLs of a running server's listeners, "" for a listener not
// configured: mqtt://host:port, mqtts://host:port and ws://host:port/mqtt (wss:// with
// a WebSocket certificate).
type Endpoints struct {
	Plain     string
	TLS       string
	WebSocket string
	// ALPN is mqtts://host:port of the WebSocket listener when it also serves MQTT to
	// clients offering ALPN x-amzn-mqtt-ca (WebSocketListener.MQTTOverALPN).
	ALPN string
	// Discovery is host:port of the Greengrass discovery listener: what
	// discovery.Config.Endpoint takes.
	Discovery string
	// HTTPS is https://host:port of the data plane (Options.HTTPS), the endpoint an AWS
	// SDK's iotdataplane client is given.
	HTTPS string
	// Console is http://host:port of the web console (Options.Console).
	Console string
}

// New validates opts and prepares a server. It binds no socket and starts no
// goroutine; Start does.
func New(opts Options) (*Server, error) {
	opts, err := opts.validate()
	if err != nil {
		return nil, err
	}
	capabilities := mqtt.NewDefaultServerCapabilities()
	capabilities.MaximumClientWritesPending = int32(opts.Outbound.Messages)
	capabilities.MaximumSessionExpiryInterval = uint32(opts.SessionExpiry / time.Second)
	if !opts.Limits.Off {
		capabilities.MaximumQos = 1 // AWS IoT has no QoS 2; the gate refuses it visibly first
		if opts.Limits.MaxPayload > 0 {
			capabilities.MaximumPacketSize = uint32(opts.Limits.MaxPayload + packetHeadroom)
		}
	}
	broker := mqtt.New(&mqtt.Options{
		InlineClient: true,
		Capabilities: capabilities,
		Logger:       slog.New(minLevelHandler{Handler: opts.Logger.Handler(), min: slog.LevelWarn}).With("component", "mochi"),
	})
	gate := &gateHook{
		broker: broker,
		policy: &policy{thingTopics: opts.ThingTopics},
		limits: opts.Limits,
		log:    opts.Logger,
	}
	if opts.Plain != nil {
		gate.plain = *opts.Plain
	}
	var operators []*x509.Certificate
	if opts.TLS != nil {
		operators = append(operators, opts.TLS.Operators...)
	}
	if opts.WebSocket != nil && opts.WebSocket.MQTTOverALPN != nil {
		operators = append(operators, opts.WebSocket.MQTTOverALPN.Operators...)
	}
	if opts.Discovery != nil {
		operators = append(operators, opts.Discovery.Operators...)
	}
	for _, op := range operators {
		if op != nil {
			gate.ops = append(gate.ops, op.Raw)
		}
	}
	if err := broker.AddHook(gate, nil); err != nil {
		return nil, fmt.Errorf("add hook: %w", err)
	}
	if err := broker.AddHook(&packetIDGuard{}, nil); err != nil {
		return nil, fmt.Errorf("add hook: %w", err)
	}
	if err := broker.AddHook(&willMarker{}, nil); err != nil {
		return nil, fmt.Errorf("add hook: %w", err)
	}
	conns := newOutboundConns(opts.Outbound, opts.Logger)
	if err := broker.AddHook(&outboundHook{conns: conns}, nil); err != nil {
		return nil, fmt.Errorf("add hook: %w", err)
	}
	if err := conns.register(opts.Registry); err != nil {
		return nil, fmt.Errorf("localiot: register metrics: %w", err)
	}
	if opts.Observe != nil {
		if err := broker.AddHook(&observer{fn: opts.Observe}, nil); err != nil {
			return nil, fmt.Errorf("add hook: %w", err)
		}
	}
	m, err := newMetrics(opts.Registry)
	if err != nil {
		return nil, err
	}
	refusals := newRefusalLog(opts.Logger, m.refused)
	if opts.TLS != nil {
		refusals.expect(listenerTLS, refusedTimeout, refusedTLSHandshake, refusedClientCertificate)
	}
	if opts.WebSocket != nil {
		refusals.expect(listenerWS, refusedTimeout, refusedSigV4, refusedBadRequest)
		if opts.WebSocket.Certificate != nil {
			refusals.expect(listenerWS, refusedTLSHandshake)
		}
		if opts.WebSocket.MQTTOverALPN != nil {
			refusals.expect(listenerWS, refusedClientCertificate)
		}
	}
	jobs, err := newJobsService(jobStoreOf(opts.Store), opts.Clock, opts.Logger)
	if err != nil {
		return nil, err
	}
	s := &Server{
		jobs:   jobs,
		opts:   opts,
		broker: broker,
		gate:   gate,
		shadow: newShadowService(opts.Store, nil, opts.Logger),
		conns:  conns,
		ready:  make(chan struct{}),
	}
	s.refusals = refusals
	if err := s.attachConsole(); err != nil {
		return nil, err
	}
	return s, nil
}

// Registry returns the registry holding the server's metrics: Options.Registry, or the
// one New made.
func (s *Server) Registry() *prometheus.Registry { return s.opts.Registry }

// Start binds every listener, serves until ctx ends, then disconnects every client,
// closes the listeners and returns nil. It returns an error at once if a listener
// cannot be bound or the server was started before.
func (s *Server) Start(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return ErrStarted
	}
	defer s.refusals.close()
	var (
		ls        []listeners.Listener
		eps       Endpoints
		discovery *discoveryServer
		dp        *dataPlane // nil without Options.HTTPS
	)
	closeAll := func() {
		discovery.close()
		for _, l := range ls {
			l.Close(func(string) {})
		}
		s.conns.closeAll()
		dp.close()
		s.console.close()
	}
	var lc net.ListenConfig
	if p := s.opts.Plain; p != nil {
		ln, err := lc.Listen(ctx, "tcp", addrOrDefault(p.Addr))
		if err != nil {
			return fmt.Errorf("plain listener: %w", err)
		}
		bound := ln.Addr().String()
		switch {
		case isLoopbackAddr(bound):
		case !p.InsecureAnyAddress: // "localhost" did not resolve to loopback
			_ = ln.Close()
			return fmt.Errorf("plain listener: %s (from %q) is not a loopback address; set Plain.InsecureAnyAddress to serve it there anyway", bound, p.Addr)
		default:
			s.opts.Logger.Warn("plain MQTT listener on an address that is not loopback: anyone who can reach it has operator rights, with no authentication", "addr", bound)
		}
		ls = append(ls, &netListener{id: listenerPlain, ln: s.conns.listener(listenerPlain, ln), dropClients: s.dropListenerClients})
		eps.Plain = "mqtt://" + bound
	}
	if t := s.opts.TLS; t != nil {
		ln, err := lc.Listen(ctx, "tcp", addrOrDefault(t.Addr))
		if err != nil {
			closeAll()
			return fmt.Errorf("tls listener: %w", err)
		}
		cfg := &tls.Config{
			MinVersion:   tls.VersionTLS12,
			Certificates: []tls.Certificate{t.Certificate},
			ClientAuth:   tls.RequireAndVerifyClientCert,
			ClientCAs:    t.ClientCAs,
			NextProtos:   []string{alpnAmazonMQTT},
		}
		ls = append(ls, &netListener{id: listenerTLS, ln: s.conns.listener(listenerTLS, ln), tlsConfig: cfg, refusals: s.refusals, dropClients: s.dropListenerClients})
		eps.TLS = "mqtts://" + ln.Addr().String()
	}
	if w := s.opts.WebSocket; w != nil {
		ln, err := lc.Listen(ctx, "tcp", addrOrDefault(w.Addr))
		if err != nil {
			closeAll()
			return fmt.Errorf("websocket listener: %w", err)
		}
		ls = append(ls, newWSListener(listenerWS, s.conns.listener(listenerWS, ln), w, s.refusals, s.dropListenerClients))
		scheme := "ws://"
		if w.Certificate != nil {
			scheme = "wss://"
		}
		eps.WebSocket = scheme + ln.Addr().String() + websocketPath
		if w.MQTTOverALPN != nil {
			eps.ALPN = "mqtts://" + ln.Addr().String()
		}
	}
	if d := s.opts.Discovery; d != nil {
		tlsAddr := ""
		if s.opts.TLS != nil {
			tlsAddr = strings.TrimPrefix(eps.TLS, "mqtts://")
		}
		var err error
		if discovery, err = startDiscovery(ctx, d, s.gate.ops, tlsAddr, s.opts.Logger); err != nil {
			closeAll()
			return fmt.Errorf("discovery listener: %w", err)
		}
		eps.Discovery = discovery.ln.Addr().String()
	}
	if h := s.opts.HTTPS; h != nil {
		dp = newDataPlane(s, h)
		if err := dp.listen(ctx, &lc); err != nil {
			closeAll()
			return fmt.Errorf("https listener: %w", err)
		}
		eps.HTTPS = dp.endpoint()
	}
	if err := s.console.listen(ctx, &lc); err != nil {
		closeAll()
		return fmt.Errorf("console listener: %w", err)
	}
	eps.Console = s.console.endpoint()
	for _, l := range ls {
		if err := s.broker.AddListener(l); err != nil {
			closeAll()
			return fmt.Errorf("add listener %s: %w", l.ID(), err)
		}
	}

	if err := s.attachShadowService(); err != nil {
		closeAll()
		return err
	}
	if err := s.attachJobsService(); err != nil {
		closeAll()
		return err
	}
	defer s.jobs.close() // no timeout fires once Start has returned

	if err := s.broker.Serve(); err != nil {
		closeAll()
		return fmt.Errorf("serve: %w", err)
	}
	dp.serve()
	s.console.serve()
	s.mu.Lock()
	s.eps = eps
	s.mu.Unlock()
	close(s.ready)
	s.opts.Logger.Info("localiot listening", "plain", eps.Plain, "tls", eps.TLS, "websocket", eps.WebSocket, "alpn", eps.ALPN, "discovery", eps.Discovery, "https", eps.HTTPS, "console", eps.Console)

	<-ctx.Done()
	dp.close() // finishes the HTTPS requests under way while the broker still runs
	s.console.close()
	// Closes the listeners (each returns once its connections' goroutines have
	// ended), disconnects the clients and stops the event loop; then ends the
	// connections' writers, dropping what they could not flush yet.
	discovery.close()
	err := s.broker.Close()
	s.conns.closeAll()
	s.opts.Logger.Info("localiot stopped")
	if err != nil {
		return fmt.Errorf("close: %w", err)
	}
	return nil
}

// dropListenerClients disconnects every client connected through the listener with
// the given ID. It stands in for mochi's own closeListenerClients (v2.7.9), whose
// Clients.GetByListener takes the clients read lock twice: when a client that is
// disconnecting by itself asks for the write lock in between, both wait forever and
// shutdown hangs. GetAll takes the read lock once.
func (s *Server) dropListenerClients(id string) {
	for _, cl := range s.broker.Clients.GetAll() {
		if cl.Net.Listener == id && !cl.Closed() {
			_ = s.broker.DisconnectClient(cl, packets.ErrServerShuttingDown)
		}
	}
}

// Ready returns a channel closed once Start has bound every listener and the broker
// serves. It is never closed if Start fails first.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Endpoints returns the listeners' URLs, with the ports actually bound. It returns
// the zero Endpoints until Ready is closed.
func (s *Server) Endpoints() Endpoints {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.eps
}

// minLevelHandler passes on only records at or above min: the embedded broker logs
// freely at Info, which is noise for us.
type minLevelHandler struct {
	slog.Handler
	min slog.Level
}

func (h minLevelHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevelHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return minLevelHandler{Handler: h.Handler.WithAttrs(attrs), min: h.min}
}

func (h minLevelHandler) WithGroup(name string) slog.Handler {
	return minLevelHandler{Handler: h.Handler.WithGroup(name), min: h.min}
}
