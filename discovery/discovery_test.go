package discovery_test

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shadowsync/shadowsync/discovery"
	"github.com/shadowsync/shadowsync/localiot"
	"github.com/shadowsync/shadowsync/transport"
)

// testTimeout bounds every test's network calls.
const testTimeout = 15 * time.Second

// local is a running localiot with TLS and discovery listeners.
type local struct {
	certs *localiot.CertSet
	eps   localiot.Endpoints
}

// startLocal runs localiot with certificates in a temporary directory for the
// things "dev" and "stranger"; only "dev" is in the discovery group. edit may change
// the options before the server starts.
func startLocal(t *testing.T, edit func(*localiot.Options)) *local {
	t.Helper()
	certs, err := localiot.EnsureCerts(t.TempDir(), "dev", "stranger")
	if err != nil {
		t.Fatal(err)
	}
	d := certs.DiscoveryListener("")
	d.Things = []string{"dev"}
	opts := localiot.Options{TLS: certs.TLSListener(""), Discovery: d, ThingTopics: []string{"sdk/test/${thing}"}}
	if edit != nil {
		edit(&opts)
	}
	srv, err := localiot.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	select {
	case <-srv.Ready():
	case err := <-done:
		t.Fatal(err)
	case <-time.After(testTimeout):
		t.Fatal("localiot did not start")
	}
	return &local{certs: certs, eps: srv.Endpoints()}
}

// config is the discovery configuration of thing, with its certificate files.
func (l *local) config(thing string) discovery.Config {
	dir := l.certs.Dir
	return discovery.Config{
		Endpoint:  l.eps.Discovery,
		ThingName: thing,
		CAFile:    filepath.Join(dir, "ca.pem"),
		CertFile:  filepath.Join(dir, thing+".pem"),
		KeyFile:   filepath.Join(dir, thing+".key"),
		Timeout:   testTimeout,
	}
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// A thing discovers localiot as its group's core, then connects to it with the
// group CA and its own certificate, and can use the connection.
func TestDiscoverThenConnectToLocaliot(t *testing.T) {
	l := startLocal(t, nil)
	ctx := testContext(t)
	info, err := discovery.Discover(ctx, l.config("dev"))
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Groups) != 1 || info.Groups[0].ID != localiot.DefaultDiscoveryGroupID {
		t.Fatalf("groups %+v", info.Groups)
	}
	cores := info.Cores()
	if len(cores) != 1 || cores[0].ThingARN != localiot.DefaultDiscoveryCoreARN || cores[0].GroupID != localiot.DefaultDiscoveryGroupID {
		t.Fatalf("cores %+v", cores)
	}
	if got, want := "mqtts://"+cores[0].Connectivity[0].Addr(), l.eps.TLS; got != want || len(cores[0].Connectivity) != 1 {
		t.Errorf("connectivity %+v, want %s", cores[0].Connectivity, want)
	}
	cas := info.CAs()
	block, _ := pem.Decode([]byte(cas[0].PEM))
	if len(cas) != 1 || block == nil || string(block.Bytes) != string(l.certs.CA.Raw) {
		t.Errorf("CAs %+v are not localiot's CA", cas)
	}
	if !strings.Contains(string(info.Raw), `"GGGroups"`) {
		t.Errorf("raw %s", info.Raw)
	}

	var tried []string
	conn, reached, err := discovery.Connect(ctx, info, discovery.ConnectOptions{
		Base:      transport.Config{ClientID: "dev", CertFile: filepath.Join(l.certs.Dir, "dev.pem"), KeyFile: filepath.Join(l.certs.Dir, "dev.key")},
		OnAttempt: func(c discovery.Candidate) { tried = append(tried, c.Endpoint()) },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if reached.Endpoint() != l.eps.TLS || len(tried) != 1 {
		t.Errorf("reached %s after %q", reached.Endpoint(), tried)
	}
	got := make(chan string, 1)
	if _, err := conn.Subscribe(ctx, "sdk/test/dev", transport.HandlerFunc(func(_ context.Context, m transport.Message) {
		select {
		case got <- string(m.Payload):
		default:
		}
	}), transport.QoS(1)); err != nil {
		t.Fatal(err)
	}
	if err := conn.Publish(ctx, "sdk/test/dev", []byte("hello core"), transport.QoS(1)); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if m != "hello core" {
			t.Errorf("received %q", m)
		}
	case <-ctx.Done():
		t.Fatal("message did not come back")
	}
}

// The operator certificate may discover any thing of the group, given in memory.
func TestOperatorDiscoversAThing(t *testing.T) {
	l := startLocal(t, nil)
	info, err := discovery.Discover(testContext(t), discovery.Config{
		Endpoint: l.eps.Discovery, ThingName: "dev", TLS: &tls.Config{RootCAs: l.certs.Pool}, Certificate: &l.certs.Operator,
	})
	if err != nil || len(info.Candidates()) != 1 {
		t.Fatalf("%+v, %v", info, err)
	}
}

// localiot answers 403 for another thing's name, 404 for a thing outside the group
// and 401 for a certificate it did not issue.
func TestLocaliotRefusals(t *testing.T) {
	l := startLocal(t, nil)
	ctx := testContext(t)
	foreign, err := localiot.EnsureCerts("", "dev")
	if err != nil {
		t.Fatal(err)
	}
	foreignCert := foreign.Things["dev"]
	for _, tc := range []struct {
		name   string
		cfg    discovery.Config
		want   error
		status int
	}{
		{"another thing", func() discovery.Config { c := l.config("stranger"); c.ThingName = "dev"; return c }(), discovery.ErrUnauthorized, http.StatusForbidden},
		{"not in the group", l.config("stranger"), discovery.ErrNotFound, http.StatusNotFound},
		{"foreign certificate", discovery.Config{Endpoint: l.eps.Discovery, ThingName: "dev", CAPEM: pemOf(l), Certificate: &foreignCert}, discovery.ErrUnauthorized, http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := discovery.Discover(ctx, tc.cfg)
			var he *discovery.HTTPError
			if !errors.Is(err, tc.want) || !errors.As(err, &he) || he.StatusCode != tc.status {
				t.Fatalf("%v, want %v (HTTP %d)", err, tc.want, tc.status)
			}
		})
	}
}

func pemOf(l *local) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: l.certs.CA.Raw})
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// A dead first address is skipped at once and the second, localiot's, is used; when
// every address is dead the error lists each attempt.
func TestConnectFallsBackToTheNextAddress(t *testing.T) {
	dead1, dead2 := closedAddr(t), closedAddr(t)
	var tlsAddr string
	l := startLocal(t, func(o *localiot.Options) {
		// The TLS listener's port is only known once bound: reserve one first.
		tlsAddr = closedAddr(t)
		o.TLS.Addr = tlsAddr
		o.Discovery.Connectivity = []string{dead1, tlsAddr}
	})
	ctx := testContext(t)
	base := transport.Config{ClientID: "dev", TLS: &tls.Config{Certificates: []tls.Certificate{l.certs.Things["dev"]}}}
	// An attempt timeout longer than the test's shows that the dead address fails
	// at once rather than at the timeout.
	opts := discovery.ConnectOptions{Base: base, AttemptTimeout: time.Hour}

	info, err := discovery.Discover(ctx, l.config("dev"))
	if err != nil {
		t.Fatal(err)
	}
	conn, reached, err := discovery.Connect(ctx, info, opts)
	if err != nil {
		t.Fatal(err)
	}
	conn.Close(context.WithoutCancel(ctx))
	if reached.Connectivity.Addr() != tlsAddr || reached.Connectivity.ID != "localiot-1" {
		t.Errorf("reached %+v, want %s", reached.Connectivity, tlsAddr)
	}

	info.Groups[0].Cores[0].Connectivity = []discovery.Connectivity{
		{ID: "a", HostAddress: "127.0.0.1", PortNumber: port(t, dead1)},
		{ID: "b", HostAddress: "127.0.0.1", PortNumber: port(t, dead2)},
		{ID: "c", HostAddress: "", PortNumber: 8883},
	}
	_, _, err = discovery.Connect(ctx, info, opts)
	var ce *discovery.ConnectError
	if !errors.As(err, &ce) || len(ce.Attempts) != 3 || !errors.Is(err, syscall.ECONNREFUSED) || !errors.Is(err, discovery.ErrInvalidResponse) {
		t.Fatalf("%v, want 3 attempts, refused and invalid", err)
	}
	for _, want := range []string{dead1, dead2, `connectivity "c"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s:\n%v", want, err)
		}
	}

	if _, _, err := discovery.Connect(ctx, &discovery.Info{}, opts); !errors.Is(err, discovery.ErrNoCores) {
		t.Errorf("empty info: %v", err)
	}
}

func port(t *testing.T, addr string) int {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return n
}

// httpsServer is a real HTTPS server on 127.0.0.1 answering with h, and a discovery
// configuration for it.
func httpsServer(t *testing.T, h http.HandlerFunc) discovery.Config {
	t.Helper()
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	certs, err := localiot.EnsureCerts("", "dev")
	if err != nil {
		t.Fatal(err)
	}
	cert := certs.Things["dev"]
	return discovery.Config{
		Endpoint:    srv.Listener.Addr().String(),
		ThingName:   "dev",
		CAPEM:       pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}),
		Certificate: &cert,
		Timeout:     testTimeout,
	}
}

// Each documented error status maps to its sentinel, and any status is an
// *HTTPError with the body.
func TestErrorStatuses(t *testing.T) {
	for _, tc := range []struct {
		status int
		want   error
	}{
		{http.StatusBadRequest, discovery.ErrBadRequest},
		{http.StatusUnauthorized, discovery.ErrUnauthorized},
		{http.StatusForbidden, discovery.ErrUnauthorized},
		{http.StatusNotFound, discovery.ErrNotFound},
		{http.StatusTooManyRequests, discovery.ErrThrottled},
		{http.StatusInternalServerError, nil},
	} {
		t.Run(strconv.Itoa(tc.status), func(t *testing.T) {
			cfg := httpsServer(t, func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/greengrass/discover/thing/dev" || r.Method != http.MethodGet {
					http.Error(w, "wrong request "+r.Method+" "+r.URL.Path, http.StatusTeapot)
					return
				}
				http.Error(w, `{"message":"nope"}`, tc.status)
			})
			_, err := discovery.Discover(testContext(t), cfg)
			var he *discovery.HTTPError
			if !errors.As(err, &he) || he.StatusCode != tc.status || !strings.Contains(string(he.Body), "nope") || he.Thing != "dev" {
				t.Fatalf("%v, want HTTP %d", err, tc.status)
			}
			for _, s := range []error{discovery.ErrBadRequest, discovery.ErrUnauthorized, discovery.ErrNotFound, discovery.ErrThrottled} {
				if errors.Is(err, s) != (s == tc.want) {
					t.Errorf("errors.Is(%v, %v) = %v", err, s, !(s == tc.want))
				}
			}
		})
	}
}

// A server that accepts the request and never answers is a time-out after
// Config.Timeout.
func TestTimeout(t *testing.T) {
	release := make(chan struct{})
	cfg := httpsServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(release) }) // runs before the server's Close
	cfg.Timeout = 200 * time.Millisecond
	start := time.Now()
	_, err := discovery.Discover(testContext(t), cfg)
	if !errors.Is(err, discovery.ErrTimeout) {
		t.Fatalf("%v, want ErrTimeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}

	// The caller's own deadline counts too.
	cfg.Timeout = 0
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if _, err := discovery.Discover(ctx, cfg); !errors.Is(err, discovery.ErrTimeout) {
		t.Fatalf("ctx deadline: %v, want ErrTimeout", err)
	}
}

func TestInvalidResponse(t *testing.T) {
	for _, body := range []string{"not json", `{"groups":[]}`} {
		cfg := httpsServer(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, body) })
		if _, err := discovery.Discover(testContext(t), cfg); !errors.Is(err, discovery.ErrInvalidResponse) {
			t.Errorf("%q: %v, want ErrInvalidResponse", body, err)
		}
	}
}

// With Config.ALPN offering x-amzn-http-ca only (what AWS wants on port 443, which
// a test cannot bind), localiot's listener negotiates it and answers.
func TestALPN(t *testing.T) {
	l := startLocal(t, nil)
	cfg := l.config("dev")
	cfg.ALPN = []string{discovery.ALPNProtocol}
	if _, err := discovery.Discover(testContext(t), cfg); err != nil {
		t.Fatal(err)
	}
}

// Bad input is refused before any network traffic, naming what is wrong.
func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	certs, err := localiot.EnsureCerts(dir, "dev")
	if err != nil {
		t.Fatal(err)
	}
	cert := certs.Things["dev"]
	good := discovery.Config{Endpoint: "127.0.0.1:1", ThingName: "dev", Certificate: &cert}
	for _, tc := range []struct {
		name string
		edit func(*discovery.Config)
		want string
	}{
		{"empty thing", func(c *discovery.Config) { c.ThingName = "" }, "ThingName is empty"},
		{"invalid thing", func(c *discovery.Config) { c.ThingName = "my/thing" }, "ThingName"},
		{"long thing", func(c *discovery.Config) { c.ThingName = strings.Repeat("t", 129) }, "ThingName"},
		{"empty endpoint", func(c *discovery.Config) { c.Endpoint = "" }, "Endpoint is empty"},
		{"URL endpoint", func(c *discovery.Config) { c.Endpoint = "https://example.com" }, "no scheme"},
		{"bad port", func(c *discovery.Config) { c.Endpoint = "example.com:99999" }, "port"},
		{"no certificate", func(c *discovery.Config) { c.Certificate = nil }, "no client certificate"},
		{"cert without key", func(c *discovery.Config) { c.Certificate = nil; c.CertFile = filepath.Join(dir, "dev.pem") }, "CertFile and KeyFile"},
		{"missing cert file", func(c *discovery.Config) {
			c.Certificate = nil
			c.CertFile, c.KeyFile = filepath.Join(dir, "nope.pem"), filepath.Join(dir, "nope.key")
		}, "CertFile/KeyFile"},
		{"missing CA file", func(c *discovery.Config) { c.CAFile = filepath.Join(dir, "nope.pem") }, "CAFile"},
		{"CA file not PEM", func(c *discovery.Config) { c.CAFile = filepath.Join(dir, "dev.key") }, "CAFile"},
		{"CAPEM not PEM", func(c *discovery.Config) { c.CAPEM = []byte("junk") }, "CAPEM"},
		{"negative timeout", func(c *discovery.Config) { c.Timeout = -time.Second }, "Timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good
			tc.edit(&cfg)
			_, err := discovery.Discover(testContext(t), cfg)
			if !errors.Is(err, discovery.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%v, want ErrInvalidConfig naming %q", err, tc.want)
			}
		})
	}
}
