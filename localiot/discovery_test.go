package localiot_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shadowsync/shadowsync/localiot"
)

// startDiscovery runs localiot with TLS and discovery listeners for the thing "dev".
func startDiscovery(t *testing.T, edit func(*localiot.Options)) (*localiot.CertSet, localiot.Endpoints) {
	t.Helper()
	certs, err := localiot.EnsureCerts("", "dev", "other")
	if err != nil {
		t.Fatal(err)
	}
	opts := localiot.Options{TLS: certs.TLSListener(""), Discovery: certs.DiscoveryListener("")}
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
	case <-time.After(10 * time.Second):
		t.Fatal("localiot did not start")
	}
	return certs, srv.Endpoints()
}

// get makes one request to the discovery listener presenting certs (none when nil).
func get(t *testing.T, certs *localiot.CertSet, method, url string, cert *tls.Certificate) (int, string) {
	t.Helper()
	cfg := &tls.Config{RootCAs: certs.Pool}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}, Timeout: 10 * time.Second}
	req, err := http.NewRequestWithContext(t.Context(), method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestDiscoveryAnswers(t *testing.T) {
	certs, eps := startDiscovery(t, nil)
	base := "https://" + eps.Discovery + "/greengrass/discover/thing/"
	dev := certs.Things["dev"]
	foreign, err := localiot.EnsureCerts("", "dev")
	if err != nil {
		t.Fatal(err)
	}
	foreignDev := foreign.Things["dev"]

	status, body := get(t, certs, http.MethodGet, base+"dev", &dev)
	if status != http.StatusOK {
		t.Fatalf("%d %s", status, body)
	}
	var doc struct {
		GGGroups []struct {
			GGGroupId string
			Cores     []struct {
				ThingArn     string `json:"thingArn"`
				Connectivity []struct {
					Id          string
					HostAddress string
					PortNumber  int
				}
			}
			CAs []string
		}
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatal(err)
	}
	g := doc.GGGroups[0]
	c := g.Cores[0].Connectivity[0]
	if len(doc.GGGroups) != 1 || g.GGGroupId != localiot.DefaultDiscoveryGroupID || g.Cores[0].ThingArn != localiot.DefaultDiscoveryCoreARN ||
		"mqtts://"+c.HostAddress+":"+strconv.Itoa(c.PortNumber) != eps.TLS || len(g.CAs) != 1 || !strings.HasPrefix(g.CAs[0], "-----BEGIN CERTIFICATE-----") {
		t.Errorf("document %s", body)
	}

	for _, tc := range []struct {
		name, method, path string
		cert               *tls.Certificate
		want               int
	}{
		{"operator", http.MethodGet, "other", &certs.Operator, http.StatusOK},
		{"no certificate", http.MethodGet, "dev", nil, http.StatusUnauthorized},
		{"foreign certificate", http.MethodGet, "dev", &foreignDev, http.StatusUnauthorized},
		{"another thing", http.MethodGet, "other", &dev, http.StatusForbidden},
		{"unknown thing", http.MethodGet, "nobody", &certs.Operator, http.StatusNotFound},
		{"invalid name", http.MethodGet, "bad.name", &dev, http.StatusBadRequest},
		{"POST", http.MethodPost, "dev", &dev, http.StatusMethodNotAllowed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if status, body := get(t, certs, tc.method, base+tc.path, tc.cert); status != tc.want {
				t.Errorf("%d %s, want %d", status, body, tc.want)
			}
		})
	}
	if status, _ := get(t, certs, http.MethodGet, "https://"+eps.Discovery+"/other", &dev); status != http.StatusNotFound {
		t.Errorf("other path: %d", status)
	}
}

// Connectivity replaces the advertised addresses, which may then be given without a
// TLS listener.
func TestDiscoveryConnectivityOption(t *testing.T) {
	certs, eps := startDiscovery(t, func(o *localiot.Options) {
		o.TLS = nil
		o.Discovery.Connectivity = []string{"core.local:8883", "[::1]:9000"}
		o.Discovery.GroupID = "g"
	})
	dev := certs.Things["dev"]
	status, body := get(t, certs, http.MethodGet, "https://"+eps.Discovery+"/greengrass/discover/thing/dev", &dev)
	for _, want := range []string{`"GGGroupId":"g"`, `"HostAddress":"core.local","PortNumber":8883`, `"HostAddress":"::1","PortNumber":9000`} {
		if status != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("%d %s: no %s", status, body, want)
		}
	}
}

func TestDiscoveryOptionsChecked(t *testing.T) {
	certs, err := localiot.EnsureCerts("")
	if err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string]func(*localiot.DiscoveryListener, *localiot.Options){
		"no certificate":  func(d *localiot.DiscoveryListener, _ *localiot.Options) { d.Certificate = tls.Certificate{} },
		"no client CAs":   func(d *localiot.DiscoveryListener, _ *localiot.Options) { d.ClientCAs = nil },
		"no CAs":          func(d *localiot.DiscoveryListener, _ *localiot.Options) { d.CAs = nil },
		"no TLS listener": func(_ *localiot.DiscoveryListener, o *localiot.Options) { o.TLS = nil },
		"bad thing":       func(d *localiot.DiscoveryListener, _ *localiot.Options) { d.Things = []string{"a b"} },
		"bad address":     func(d *localiot.DiscoveryListener, _ *localiot.Options) { d.Connectivity = []string{"core.local"} },
	} {
		d := certs.DiscoveryListener("")
		o := localiot.Options{TLS: certs.TLSListener(""), Discovery: d}
		edit(d, &o)
		if _, err := localiot.New(o); !errors.Is(err, localiot.ErrInvalidOptions) || !strings.Contains(err.Error(), "Discovery") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// The response names its body's length as "content-length: N", in lower case, as
// AWS's endpoint does: the Python SDK v1's DiscoveryInfoProvider reads the raw
// response and finds the length by that exact text, for answers and refusals alike.
func TestDiscoveryResponseHeaderForHandWrittenClients(t *testing.T) {
	certs, eps := startDiscovery(t, nil)
	dev := certs.Things["dev"]
	for _, thing := range []string{"dev", "other"} { // an answer, and a 403
		conn, err := tls.Dial("tcp", eps.Discovery, &tls.Config{RootCAs: certs.Pool, Certificates: []tls.Certificate{dev}})
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := fmt.Fprintf(conn, "GET /greengrass/discover/thing/%s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", thing, eps.Discovery); err != nil {
			t.Fatal(err)
		}
		raw, err := io.ReadAll(conn)
		_ = conn.Close()
		if err != nil {
			t.Fatal(err)
		}
		head, body, ok := strings.Cut(string(raw), "\r\n\r\n")
		if !ok {
			t.Fatalf("%s: no end of header in %q", thing, raw)
		}
		if want := fmt.Sprintf("content-length: %d\r\n", len(body)); !strings.Contains(head+"\r\n", want) {
			t.Errorf("%s: header lacks %q:\n%s", thing, want, head)
		}
	}
}
