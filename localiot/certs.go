package localiot

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/shadowsync/shadowsync/shadowstate"
)

// Names of the fixed certificates in a CertSet directory: "<name>.pem" holds the
// certificate and "<name>.key" its private key. A thing's pair is "<thing>.pem" and
// "<thing>.key", so these three names cannot be thing names.
const (
	CACertName       = "ca"
	ServerCertName   = "server"
	OperatorCertName = "operator"
)

// Validity of generated certificates. A leaf that has expired is re-issued from the CA
// on the next EnsureCerts; an expired CA is an error (delete the directory).
const (
	caValidity   = 10 * 365 * 24 * time.Hour
	leafValidity = 2 * 365 * 24 * time.Hour
	// backdate covers clock skew between the machine that issues and the one that checks.
	backdate = time.Hour
)

// ErrCerts is returned (wrapped, naming the file) when a certificate directory holds
// files that cannot be used and must not be overwritten: half a pair, an unreadable
// CA, or a CA that has expired.
var ErrCerts = errors.New("localiot: unusable certificates")

// CertSet is a throwaway public-key infrastructure for a local AWS IoT: a CA, a server
// certificate (for localhost, 127.0.0.1 and ::1 unless CertOptions.ServerNames says
// otherwise), an operator client certificate, and
// one client certificate per thing whose subject CN is the thing's name. All keys are
// ECDSA P-256. A CertSet is read-only after EnsureCerts and safe for concurrent use.
type CertSet struct {
	// Dir is the directory holding the PEM files, or "" for a set kept in memory.
	Dir string
	// CA is the certificate authority every other certificate is signed by.
	CA *x509.Certificate
	// Pool holds CA alone: the roots for clients verifying the server and for the
	// server verifying clients.
	Pool *x509.CertPool
	// Server is the TLS server certificate with its key.
	Server tls.Certificate
	// Operator is the client certificate that has operator rights.
	Operator tls.Certificate
	// Things maps each thing name to its client certificate.
	Things map[string]tls.Certificate

	ca *authority
}

// CertOptions says what EnsureCertsWith generates besides the CA and the operator
// certificate.
type CertOptions struct {
	// Things are the things to issue client certificates for (subject CN = thing).
	Things []string
	// ServerNames are the DNS names and IP addresses the server certificate is valid
	// for, and only those: for instance an AWS IoT endpoint name such as
	// "abcdefghijklmn-ats.iot.us-east-1.amazonaws.com" that clients resolve to
	// 127.0.0.1, for clients that accept only such endpoints or that check, as AWS's
	// certificate ensures, that connecting to the bare IP address fails. Nil means
	// localhost, 127.0.0.1 and ::1. A server certificate in the directory for other
	// names is re-issued.
	ServerNames []string
}

// defaultServerNames are the server certificate's names unless CertOptions says
// otherwise.
var defaultServerNames = []string{"localhost", "127.0.0.1", "::1"}

// EnsureCerts returns the certificates in dir for the given things, generating
// whatever is missing and reusing every file pair already present: a CA (ca.pem,
// ca.key), a server certificate (server.pem, server.key), an operator certificate
// (operator.pem, operator.key) and one certificate per thing (<thing>.pem,
// <thing>.key, subject CN = thing). Key files are written with mode 0600. A thing
// certificate that no longer verifies against the CA or has expired is re-issued.
// With dir "" everything is generated in memory and nothing is written.
func EnsureCerts(dir string, things ...string) (*CertSet, error) {
	return EnsureCertsWith(dir, CertOptions{Things: things})
}

// EnsureCertsWith is EnsureCerts with a choice of the server certificate's names.
func EnsureCertsWith(dir string, opts CertOptions) (*CertSet, error) {
	things := opts.Things
	names := opts.ServerNames
	if names == nil {
		names = defaultServerNames
	}
	san, err := parseServerNames(names)
	if err != nil {
		return nil, err
	}
	for _, thing := range things {
		if err := (shadowstate.ID{Thing: thing}).Validate(); err != nil {
			return nil, fmt.Errorf("certs: %w", err)
		}
		if thing == CACertName || thing == ServerCertName || thing == OperatorCertName {
			return nil, fmt.Errorf("certs: %w: %q is reserved for the %s certificate", shadowstate.ErrInvalidName, thing, thing)
		}
	}
	if dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("certs: %w", err)
		}
	}
	ca, err := ensureCA(dir)
	if err != nil {
		return nil, err
	}
	set := &CertSet{Dir: dir, CA: ca.cert, Pool: x509.NewCertPool(), Things: make(map[string]tls.Certificate, len(things)), ca: ca}
	set.Pool.AddCert(ca.cert)
	if set.Server, err = ensureLeaf(dir, ServerCertName, ca, &san); err != nil {
		return nil, err
	}
	if set.Operator, err = ensureLeaf(dir, OperatorCertName, ca, nil); err != nil {
		return nil, err
	}
	for _, thing := range things {
		if set.Things[thing], err = ensureLeaf(dir, thing, ca, nil); err != nil {
			return nil, err
		}
	}
	return set, nil
}

// ClientTLS returns a client configuration that presents the certificate of name —
// a thing given to EnsureCerts, or OperatorCertName — and trusts only the set's CA.
func (c *CertSet) ClientTLS(name string) (*tls.Config, error) {
	cert, ok := c.Things[name]
	if name == OperatorCertName {
		cert, ok = c.Operator, true
	}
	if !ok {
		return nil, fmt.Errorf("certs: no certificate for %q", name)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: c.Pool, Certificates: []tls.Certificate{cert}}, nil
}

// TLSListener returns a TLS listener on addr ("" means 127.0.0.1:0) that serves the
// set's server certificate, accepts client certificates signed by its CA, and gives
// the operator certificate operator rights.
func (c *CertSet) TLSListener(addr string) *TLSListener {
	return &TLSListener{Addr: addr, Certificate: c.Server, ClientCAs: c.Pool, Operators: []*x509.Certificate{c.Operator.Leaf}}
}

// ClientCertAuth returns the client certificate checks for WebSocketListener's
// MQTTOverALPN: certificates signed by the set's CA, the operator certificate with
// operator rights.
func (c *CertSet) ClientCertAuth() *ClientCertAuth {
	return &ClientCertAuth{ClientCAs: c.Pool, Operators: []*x509.Certificate{c.Operator.Leaf}}
}

// authority is a CA able to issue certificates.
type authority struct {
	cert *x509.Certificate
	key  crypto.Signer
}

// newAuthority creates a self-signed CA valid from notBefore to notAfter.
func newAuthority(cn string, notBefore, notAfter time.Time) (*authority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl, err := certTemplate(cn, notBefore, notAfter)
	if err != nil {
		return nil, err
	}
	tmpl.IsCA = true
	tmpl.BasicConstraintsValid = true
	tmpl.MaxPathLenZero = true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &authority{cert: cert, key: key}, nil
}

// serverNames are a server certificate's subject alternative names.
type serverNames struct {
	dns []string
	ips []net.IP
}

// parseServerNames sorts names into IP addresses and DNS names, refusing what is
// neither.
func parseServerNames(names []string) (serverNames, error) {
	var san serverNames
	if len(names) == 0 {
		return san, fmt.Errorf("certs: %w: no server names", ErrInvalidOptions)
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			san.ips = append(san.ips, ip)
			continue
		}
		if !validDNSName(n) {
			return san, fmt.Errorf("certs: %w: server name %q is neither a DNS name nor an IP address", ErrInvalidOptions, n)
		}
		san.dns = append(san.dns, n)
	}
	return san, nil
}

// validDNSName reports whether n is a DNS name a certificate may carry: dot-separated
// labels of letters, digits and hyphens, the first label possibly "*".
func validDNSName(n string) bool {
	if n == "" || len(n) > 253 {
		return false
	}
	for i, label := range strings.Split(n, ".") {
		if label == "*" && i == 0 {
			continue
		}
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// matches reports whether leaf carries exactly these names.
func (san serverNames) matches(leaf *x509.Certificate) bool {
	ips := func(l []net.IP) []string {
		out := make([]string, len(l))
		for i, ip := range l {
			out[i] = ip.String()
		}
		slices.Sort(out)
		return out
	}
	dns := func(l []string) []string {
		out := make([]string, len(l))
		for i, n := range l {
			out[i] = strings.ToLower(n)
		}
		slices.Sort(out)
		return out
	}
	return slices.Equal(dns(san.dns), dns(leaf.DNSNames)) && slices.Equal(ips(san.ips), ips(leaf.IPAddresses))
}

// issue signs a new leaf for cn: a server certificate for the loopback names when
// server is true, else a client certificate.
func (a *authority) issue(cn string, server bool, notBefore, notAfter time.Time) (tls.Certificate, error) {
	var san *serverNames
	if server {
		names, err := parseServerNames(defaultServerNames)
		if err != nil {
			return tls.Certificate{}, err
		}
		san = &names
	}
	return a.issueFor(cn, san, notBefore, notAfter)
}

// issueFor signs a new leaf for cn: a server certificate for san's names, or a
// client certificate when san is nil.
func (a *authority) issueFor(cn string, san *serverNames, notBefore, notAfter time.Time) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl, err := certTemplate(cn, notBefore, notAfter)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	if san != nil {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.DNSNames = san.dns
		tmpl.IPAddresses = san.ips
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, key.Public(), a.key)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// verifies reports whether leaf chains to the authority and is valid now.
func (a *authority) verifies(leaf *x509.Certificate, server bool) bool {
	usage := x509.ExtKeyUsageClientAuth
	if server {
		usage = x509.ExtKeyUsageServerAuth
	}
	roots := x509.NewCertPool()
	roots.AddCert(a.cert)
	_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{usage}})
	return err == nil
}

func certTemplate(cn string, notBefore, notAfter time.Time) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	return &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"shadowsync localiot"}},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
	}, nil
}

// ensureCA loads ca.pem/ca.key from dir, or creates and writes them when both are absent.
func ensureCA(dir string) (*authority, error) {
	cert, found, err := loadPair(dir, CACertName)
	if err != nil {
		return nil, err
	}
	if found {
		key, ok := cert.PrivateKey.(crypto.Signer)
		if !ok || !cert.Leaf.IsCA {
			return nil, fmt.Errorf("%w: %s is not a usable CA", ErrCerts, filepath.Join(dir, CACertName+".pem"))
		}
		if time.Now().After(cert.Leaf.NotAfter) {
			return nil, fmt.Errorf("%w: %s expired on %s", ErrCerts, filepath.Join(dir, CACertName+".pem"), cert.Leaf.NotAfter.Format(time.DateOnly))
		}
		return &authority{cert: cert.Leaf, key: key}, nil
	}
	now := time.Now()
	ca, err := newAuthority("shadowsync localiot CA", now.Add(-backdate), now.Add(caValidity))
	if err != nil {
		return nil, fmt.Errorf("certs: generate CA: %w", err)
	}
	if err := writePair(dir, CACertName, ca.cert.Raw, ca.key); err != nil {
		return nil, err
	}
	return ca, nil
}

// ensureLeaf loads <name>.pem/<name>.key from dir if they verify against ca (and, for
// a server certificate, carry exactly san's names), else issues a fresh pair and
// writes it. san is nil for a client certificate.
func ensureLeaf(dir, name string, ca *authority, san *serverNames) (tls.Certificate, error) {
	cert, found, err := loadPair(dir, name)
	if err != nil {
		return tls.Certificate{}, err
	}
	server := san != nil
	if found && ca.verifies(cert.Leaf, server) && (server && san.matches(cert.Leaf) || !server && cert.Leaf.Subject.CommonName == name) {
		return cert, nil
	}
	now := time.Now()
	cert, err = ca.issueFor(name, san, now.Add(-backdate), now.Add(leafValidity))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("certs: issue %s: %w", name, err)
	}
	if err := writePair(dir, name, cert.Leaf.Raw, cert.PrivateKey.(crypto.Signer)); err != nil {
		return tls.Certificate{}, err
	}
	return cert, nil
}

// loadPair reads <name>.pem and <name>.key. found is false when neither exists (or dir
// is ""); exactly one existing, or a pair that does not load, is an error.
func loadPair(dir, name string) (cert tls.Certificate, found bool, err error) {
	if dir == "" {
		return tls.Certificate{}, false, nil
	}
	certFile, keyFile := filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
	var present []string
	for _, f := range []string{certFile, keyFile} {
		_, err := os.Stat(f)
		switch {
		case err == nil:
			present = append(present, f)
		case !errors.Is(err, fs.ErrNotExist):
			return tls.Certificate{}, false, fmt.Errorf("certs: %w", err)
		}
	}
	switch len(present) {
	case 0:
		return tls.Certificate{}, false, nil
	case 1:
		return tls.Certificate{}, false, fmt.Errorf("%w: %s exists without its pair", ErrCerts, present[0])
	}
	cert, err = tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return tls.Certificate{}, false, fmt.Errorf("%w: %s: %w", ErrCerts, certFile, err)
	}
	return cert, true, nil
}

// writePair writes the certificate (0644) and key (0600) of name into dir, each
// through a temporary file and a rename so a reader never sees half a file.
func writePair(dir, name string, der []byte, key crypto.Signer) error {
	if dir == "" {
		return nil
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("certs: %s key: %w", name, err)
	}
	files := []struct {
		path string
		mode os.FileMode
		pem  *pem.Block
	}{
		{filepath.Join(dir, name+".key"), 0o600, &pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}},
		{filepath.Join(dir, name+".pem"), 0o644, &pem.Block{Type: "CERTIFICATE", Bytes: der}},
	}
	for _, f := range files {
		if err := writeFileAtomic(f.path, pem.EncodeToMemory(f.pem), f.mode); err != nil {
			return fmt.Errorf("certs: %w", err)
		}
	}
	return nil
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
