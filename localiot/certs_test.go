package localiot

import (
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/shadowsync/shadowsync/shadowstate"
)

func TestEnsureCertsInMemory(t *testing.T) {
	set, err := EnsureCerts("", "Pump-7")
	if err != nil {
		t.Fatal(err)
	}
	if set.Dir != "" {
		t.Errorf("Dir = %q, want empty", set.Dir)
	}
	srv := set.Server.Leaf
	if err := srv.VerifyHostname("localhost"); err != nil {
		t.Error(err)
	}
	if diff := cmp.Diff([]string{"127.0.0.1", "::1"}, ipStrings(srv.IPAddresses)); diff != "" {
		t.Errorf("server IP SANs (-want +got):\n%s", diff)
	}
	for name, c := range map[string]*x509.Certificate{"server": srv, OperatorCertName: set.Operator.Leaf, "Pump-7": set.Things["Pump-7"].Leaf} {
		usage := x509.ExtKeyUsageClientAuth
		if name == "server" {
			usage = x509.ExtKeyUsageServerAuth
		}
		if _, err := c.Verify(x509.VerifyOptions{Roots: set.Pool, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			t.Errorf("%s certificate does not verify: %v", name, err)
		}
	}
	if cn := set.Things["Pump-7"].Leaf.Subject.CommonName; cn != "Pump-7" {
		t.Errorf("thing certificate CN = %q, want Pump-7", cn)
	}
	if _, err := set.ClientTLS("nobody"); err == nil {
		t.Error("ClientTLS for an unknown thing: no error")
	}
}

func TestEnsureCertsReuse(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	first, err := EnsureCerts(dir, "a")
	if err != nil {
		t.Fatal(err)
	}
	files := []string{"ca.pem", "ca.key", "server.pem", "server.key", "operator.pem", "operator.key", "a.pem", "a.key"}
	before := make(map[string]string)
	for _, f := range files {
		info, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if filepath.Ext(f) == ".key" && info.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, info.Mode().Perm())
		}
		b, _ := os.ReadFile(filepath.Join(dir, f))
		before[f] = string(b)
	}

	second, err := EnsureCerts(dir, "a", "b")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b, _ := os.ReadFile(filepath.Join(dir, f))
		if string(b) != before[f] {
			t.Errorf("%s was rewritten", f)
		}
	}
	if !first.CA.Equal(second.CA) || !first.Things["a"].Leaf.Equal(second.Things["a"].Leaf) || !first.Operator.Leaf.Equal(second.Operator.Leaf) {
		t.Error("second EnsureCerts returned different certificates")
	}
	if _, err := os.Stat(filepath.Join(dir, "b.pem")); err != nil {
		t.Errorf("new thing b: %v", err)
	}
}

func TestEnsureCertsRefuses(t *testing.T) {
	tests := []struct {
		name   string
		things []string
		setup  func(dir string) error
		want   error
	}{
		{name: "reserved thing name", things: []string{"server"}, want: shadowstate.ErrInvalidName},
		{name: "invalid thing name", things: []string{"a/b"}, want: shadowstate.ErrInvalidName},
		{name: "half a pair", setup: func(dir string) error {
			return os.WriteFile(filepath.Join(dir, "ca.pem"), []byte("x"), 0o644)
		}, want: ErrCerts},
		{name: "garbage pair", setup: func(dir string) error {
			return errors.Join(os.WriteFile(filepath.Join(dir, "ca.pem"), []byte("x"), 0o644),
				os.WriteFile(filepath.Join(dir, "ca.key"), []byte("y"), 0o600))
		}, want: ErrCerts},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.setup != nil {
				if err := tt.setup(dir); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := EnsureCerts(dir, tt.things...); !errors.Is(err, tt.want) {
				t.Errorf("EnsureCerts error = %v, want %v", err, tt.want)
			}
		})
	}
}

func ipStrings(ips []net.IP) []string {
	var s []string
	for _, ip := range ips {
		s = append(s, ip.String())
	}
	return s
}

// A server certificate for an AWS-shaped name only is valid for that name and not for
// the loopback address it resolves to, like AWS's own; changing the names re-issues
// it, keeping them reuses it.
func TestEnsureCertsServerNames(t *testing.T) {
	const aws = "abcdefghijklmn-ats.iot.us-east-1.amazonaws.com"
	dir := filepath.Join(t.TempDir(), "certs")
	first, err := EnsureCerts(dir)
	if err != nil {
		t.Fatal(err)
	}
	named, err := EnsureCertsWith(dir, CertOptions{ServerNames: []string{aws}})
	if err != nil {
		t.Fatal(err)
	}
	srv := named.Server.Leaf
	if srv.Equal(first.Server.Leaf) {
		t.Fatal("server certificate not re-issued for new names")
	}
	if _, err := srv.Verify(x509.VerifyOptions{Roots: named.Pool, DNSName: aws, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Errorf("not valid for %s: %v", aws, err)
	}
	for _, other := range []string{"127.0.0.1", "localhost", "other-ats.iot.us-east-1.amazonaws.com"} {
		if err := srv.VerifyHostname(other); err == nil {
			t.Errorf("valid for %s too", other)
		}
	}
	if !named.CA.Equal(first.CA) || !named.Operator.Leaf.Equal(first.Operator.Leaf) {
		t.Error("CA or operator certificate changed with the server names")
	}
	again, err := EnsureCertsWith(dir, CertOptions{ServerNames: []string{aws}})
	if err != nil {
		t.Fatal(err)
	}
	if !again.Server.Leaf.Equal(srv) {
		t.Error("server certificate re-issued for the same names")
	}
	mixed, err := EnsureCertsWith("", CertOptions{ServerNames: []string{"*.iot.us-east-1.amazonaws.com", "10.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := mixed.Server.Leaf.VerifyHostname(aws); err != nil {
		t.Errorf("wildcard name: %v", err)
	}
	if err := mixed.Server.Leaf.VerifyHostname("10.0.0.1"); err != nil {
		t.Errorf("IP name: %v", err)
	}
	for _, bad := range [][]string{{}, {""}, {"no spaces.example"}, {"under_score.example"}, {"-dash.example"}} {
		if _, err := EnsureCertsWith("", CertOptions{ServerNames: bad}); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("server names %q: err %v, want ErrInvalidOptions", bad, err)
		}
	}
}
