package localiot

import (
	"cmp"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// SigV4 query parameters of a presigned AWS IoT WebSocket URL.
const (
	amzAlgorithm     = "X-Amz-Algorithm"
	amzCredential    = "X-Amz-Credential"
	amzDate          = "X-Amz-Date"
	amzExpires       = "X-Amz-Expires"
	amzSignedHeaders = "X-Amz-SignedHeaders"
	amzSignature     = "X-Amz-Signature"
	amzSecurityToken = "X-Amz-Security-Token"

	sigV4Algorithm  = "AWS4-HMAC-SHA256"
	sigV4TimeFormat = "20060102T150405Z"
	sigV4Terminator = "aws4_request"
	// emptyPayloadHash is hex(SHA-256("")), the payload hash AWS IoT clients sign.
	emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	unsignedPayload  = "UNSIGNED-PAYLOAD"
)

// errSigV4 is the cause logged when a WebSocket upgrade is refused; it never carries a
// secret, a token or a signature.
var errSigV4 = errors.New("sigv4")

// sigV4Verifier checks SigV4 presigned WebSocket URLs against known credentials, as AWS
// IoT's device gateway does. It is immutable and safe for concurrent use.
type sigV4Verifier struct {
	creds  map[string]Credential // by access key ID
	region string                // "" accepts any region
	skew   time.Duration
	now    func() time.Time
}

func newSigV4Verifier(ws *WebSocketListener) *sigV4Verifier {
	v := &sigV4Verifier{creds: make(map[string]Credential, len(ws.Credentials)), region: ws.Region, skew: ws.MaxSkew, now: time.Now}
	for _, c := range ws.Credentials {
		v.creds[c.AccessKeyID] = c
	}
	if v.skew == 0 {
		v.skew = defaultMaxSkew
	}
	return v
}

// verify returns the credential that presigned r, or an error saying why r is refused.
// The canonical request is rebuilt from r: method, path, the query without
// X-Amz-Signature and (as AWS IoT wants) without X-Amz-Security-Token, the signed
// headers, and the empty payload's hash. A token that was signed as part of the
// query, and the UNSIGNED-PAYLOAD hash, are accepted too, for clients that do so.
func (v *sigV4Verifier) verify(r *http.Request) (Credential, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return Credential{}, fmt.Errorf("%w: malformed query", errSigV4)
	}
	param := func(name string, required bool) (string, error) {
		vals := q[name]
		switch {
		case len(vals) > 1:
			return "", fmt.Errorf("%w: %s given %d times", errSigV4, name, len(vals))
		case len(vals) == 0 && required:
			return "", fmt.Errorf("%w: %s missing", errSigV4, name)
		case len(vals) == 0:
			return "", nil
		}
		return vals[0], nil
	}
	var p [7]string
	for i, name := range []string{amzAlgorithm, amzCredential, amzDate, amzSignedHeaders, amzSignature, amzExpires, amzSecurityToken} {
		if p[i], err = param(name, i < 5); err != nil {
			return Credential{}, err
		}
	}
	alg, credential, date, signedHeaders, signature, expires, token := p[0], p[1], p[2], p[3], p[4], p[5], p[6]
	if alg != sigV4Algorithm {
		return Credential{}, fmt.Errorf("%w: algorithm %q", errSigV4, alg)
	}

	scope := strings.Split(credential, "/")
	if len(scope) != 5 || scope[4] != sigV4Terminator {
		return Credential{}, fmt.Errorf("%w: malformed credential scope", errSigV4)
	}
	keyID, day, region, service := scope[0], scope[1], scope[2], scope[3]
	cred, ok := v.creds[keyID]
	if !ok {
		return Credential{}, fmt.Errorf("%w: unknown access key ID %q", errSigV4, keyID)
	}
	if service != serviceIoTDeviceGateway && service != serviceIoTDataDeprecated {
		return Credential{}, fmt.Errorf("%w: service %q", errSigV4, service)
	}
	if v.region != "" && region != v.region {
		return Credential{}, fmt.Errorf("%w: region %q, want %q", errSigV4, region, v.region)
	}

	signed, err := time.Parse(sigV4TimeFormat, date)
	if err != nil || signed.Format("20060102") != day {
		return Credential{}, fmt.Errorf("%w: X-Amz-Date does not match the credential scope", errSigV4)
	}
	var validFor time.Duration
	if expires != "" {
		n, err := strconv.Atoi(expires)
		if err != nil || n < 1 || time.Duration(n)*time.Second > maxPresignExpiry {
			return Credential{}, fmt.Errorf("%w: X-Amz-Expires %q", errSigV4, expires)
		}
		validFor = time.Duration(n) * time.Second
	}
	now := v.now()
	if signed.After(now.Add(v.skew)) {
		return Credential{}, fmt.Errorf("%w: signed in the future (%s)", errSigV4, date)
	}
	if now.After(signed.Add(validFor + v.skew)) {
		return Credential{}, fmt.Errorf("%w: expired (signed %s)", errSigV4, date)
	}

	if cred.SessionToken != "" || token != "" {
		if subtle.ConstantTimeCompare([]byte(cred.SessionToken), []byte(token)) != 1 {
			return Credential{}, fmt.Errorf("%w: session token does not match access key ID %q", errSigV4, keyID)
		}
	}

	headers := strings.Split(signedHeaders, ";")
	if !slices.Contains(headers, "host") || !slices.IsSorted(headers) {
		return Credential{}, fmt.Errorf("%w: signed headers must be sorted and include host", errSigV4)
	}
	var canonHeaders strings.Builder
	for _, h := range headers {
		if h == "" || h != strings.ToLower(h) {
			return Credential{}, fmt.Errorf("%w: malformed signed headers", errSigV4)
		}
		val := r.Host
		if h != "host" {
			val = strings.Join(r.Header.Values(h), ",")
		}
		canonHeaders.WriteString(h + ":" + strings.Join(strings.Fields(val), " ") + "\n")
	}

	key := sigV4Key(cred.SecretAccessKey, day, region, service)
	want := []byte(strings.ToLower(signature))
	tokenModes := []bool{false}
	if token != "" {
		tokenModes = append(tokenModes, true)
	}
	for _, withToken := range tokenModes {
		query := canonicalQuery(q, withToken)
		for _, payload := range []string{emptyPayloadHash, unsignedPayload} {
			canonical := strings.Join([]string{r.Method, canonicalPath(r.URL), query, canonHeaders.String(), signedHeaders, payload}, "\n")
			sum := sha256.Sum256([]byte(canonical))
			toSign := strings.Join([]string{sigV4Algorithm, date, strings.Join(scope[1:], "/"), hex.EncodeToString(sum[:])}, "\n")
			got := []byte(hex.EncodeToString(hmacSHA256(key, toSign)))
			if hmac.Equal(got, want) {
				return cred, nil
			}
		}
	}
	return Credential{}, fmt.Errorf("%w: signature does not match for access key ID %q", errSigV4, keyID)
}

// sigV4Key derives the signing key for one day, region and service.
func sigV4Key(secret, day, region, service string) []byte {
	k := hmacSHA256([]byte("AWS4"+secret), day)
	k = hmacSHA256(k, region)
	k = hmacSHA256(k, service)
	return hmacSHA256(k, sigV4Terminator)
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

// canonicalQuery encodes q, less the signature and (unless withToken) the session
// token, as SigV4's canonical query string: every name and value percent-encoded,
// pairs sorted by name and then value.
func canonicalQuery(q url.Values, withToken bool) string {
	type pair struct{ name, val string }
	pairs := make([]pair, 0, len(q))
	for name, vals := range q {
		if name == amzSignature || name == amzSecurityToken && !withToken {
			continue
		}
		for _, val := range vals {
			pairs = append(pairs, pair{sigV4Escape(name), sigV4Escape(val)})
		}
	}
	slices.SortFunc(pairs, func(a, b pair) int {
		return cmp.Or(strings.Compare(a.name, b.name), strings.Compare(a.val, b.val))
	})
	var b strings.Builder
	for i, p := range pairs {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(p.name + "=" + p.val)
	}
	return b.String()
}

// canonicalPath is the URI-encoded request path, "/" when empty.
func canonicalPath(u *url.URL) string {
	path := u.EscapedPath()
	if path == "" {
		return "/"
	}
	return path
}

// sigV4Escape percent-encodes everything except SigV4's unreserved characters
// A-Z a-z 0-9 - _ . ~, with upper-case hex.
func sigV4Escape(s string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}
