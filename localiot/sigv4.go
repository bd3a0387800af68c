package localiot

import (
	"crypto/hmac"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shadowsync/shadowsync/internal/sigv4"
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
	// services are the service names a signature's scope may carry; nil means the
	// device gateway's (iotdevicegateway, and iotdata, which the SDKs sign with).
	services []string
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
	p, err := parsePresigned(r.URL.RawQuery)
	if err != nil {
		return Credential{}, err
	}
	if p.algorithm != sigv4.Algorithm {
		return Credential{}, fmt.Errorf("%w: algorithm %q", errSigV4, p.algorithm)
	}
	cred, scope, err := v.checkScope(p.credential)
	if err != nil {
		return Credential{}, err
	}
	if err := v.checkTime(p, scope.day); err != nil {
		return Credential{}, err
	}
	if err := checkToken(cred, p.token); err != nil {
		return Credential{}, err
	}
	headers, err := canonicalHeaders(r, p.signedHeaders)
	if err != nil {
		return Credential{}, err
	}
	if !signatureMatches(r, p, cred.SecretAccessKey, scope, headers) {
		return Credential{}, fmt.Errorf("%w: signature does not match for access key ID %q", errSigV4, cred.AccessKeyID)
	}
	return cred, nil
}

// presignedQuery is a presigned URL's query and its SigV4 parameters.
type presignedQuery struct {
	q                                                     url.Values
	algorithm, credential, date, signedHeaders, signature string
	expires, token                                        string // "" when absent
}

// parsePresigned reads the SigV4 parameters from a raw query, each at most once; all
// but X-Amz-Expires and X-Amz-Security-Token are required.
func parsePresigned(raw string) (presignedQuery, error) {
	q, err := url.ParseQuery(raw)
	if err != nil {
		return presignedQuery{}, fmt.Errorf("%w: malformed query", errSigV4)
	}
	p := presignedQuery{q: q}
	params := []struct {
		name     string
		dst      *string
		required bool
	}{
		{sigv4.ParamAlgorithm, &p.algorithm, true},
		{sigv4.ParamCredential, &p.credential, true},
		{sigv4.ParamDate, &p.date, true},
		{sigv4.ParamSignedHeaders, &p.signedHeaders, true},
		{sigv4.ParamSignature, &p.signature, true},
		{sigv4.ParamExpires, &p.expires, false},
		{sigv4.ParamSecurityToken, &p.token, false},
	}
	for _, param := range params {
		if *param.dst, err = queryParam(q, param.name, param.required); err != nil {
			return presignedQuery{}, err
		}
	}
	return p, nil
}

// queryParam returns the one value of q's parameter name, "" if it is absent and not
// required.
func queryParam(q url.Values, name string, required bool) (string, error) {
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

// credentialScope is X-Amz-Credential taken apart.
type credentialScope struct {
	keyID, day, region, service string
}

// checkScope parses X-Amz-Credential and returns the credential it names, refusing an
// unknown access key, a service other than AWS IoT's and (when v has one) another
// region.
func (v *sigV4Verifier) checkScope(credential string) (Credential, credentialScope, error) {
	parts := strings.Split(credential, "/")
	if len(parts) != 5 || parts[4] != sigv4.Terminator {
		return Credential{}, credentialScope{}, fmt.Errorf("%w: malformed credential scope", errSigV4)
	}
	s := credentialScope{keyID: parts[0], day: parts[1], region: parts[2], service: parts[3]}
	cred, ok := v.creds[s.keyID]
	if !ok {
		return Credential{}, credentialScope{}, fmt.Errorf("%w: unknown access key ID %q", errSigV4, s.keyID)
	}
	services := v.services
	if services == nil {
		services = []string{sigv4.ServiceIoTDeviceGateway, serviceIoTDataDeprecated}
	}
	if !slices.Contains(services, s.service) {
		return Credential{}, credentialScope{}, fmt.Errorf("%w: service %q", errSigV4, s.service)
	}
	if v.region != "" && s.region != v.region {
		return Credential{}, credentialScope{}, fmt.Errorf("%w: region %q, want %q", errSigV4, s.region, v.region)
	}
	return cred, s, nil
}

// checkTime refuses a URL whose X-Amz-Date is not on the scope's day, or lies outside
// [now - expiry - skew, now + skew].
func (v *sigV4Verifier) checkTime(p presignedQuery, day string) error {
	signed, err := time.Parse(sigv4.TimeFormat, p.date)
	if err != nil || signed.Format(sigv4.DayFormat) != day {
		return fmt.Errorf("%w: X-Amz-Date does not match the credential scope", errSigV4)
	}
	var validFor time.Duration
	if p.expires != "" {
		n, err := strconv.Atoi(p.expires)
		if err != nil || n < 1 || time.Duration(n)*time.Second > maxPresignExpiry {
			return fmt.Errorf("%w: X-Amz-Expires %q", errSigV4, p.expires)
		}
		validFor = time.Duration(n) * time.Second
	}
	now := v.now()
	if signed.After(now.Add(v.skew)) {
		return fmt.Errorf("%w: signed in the future (%s)", errSigV4, p.date)
	}
	if now.After(signed.Add(validFor + v.skew)) {
		return fmt.Errorf("%w: expired (signed %s)", errSigV4, p.date)
	}
	return nil
}

// checkToken refuses a session token that is not cred's, including one given for a
// long-term credential or missing for a temporary one.
func checkToken(cred Credential, token string) error {
	if cred.SessionToken == "" && token == "" {
		return nil
	}
	if subtle.ConstantTimeCompare([]byte(cred.SessionToken), []byte(token)) != 1 {
		return fmt.Errorf("%w: session token does not match access key ID %q", errSigV4, cred.AccessKeyID)
	}
	return nil
}

// canonicalHeaders returns the canonical header lines of r's signed headers, which
// must be lower case, sorted and include host.
func canonicalHeaders(r *http.Request, signedHeaders string) (string, error) {
	headers := strings.Split(signedHeaders, ";")
	if !slices.Contains(headers, "host") || !slices.IsSorted(headers) {
		return "", fmt.Errorf("%w: signed headers must be sorted and include host", errSigV4)
	}
	var b strings.Builder
	for _, h := range headers {
		if h == "" || h != strings.ToLower(h) {
			return "", fmt.Errorf("%w: malformed signed headers", errSigV4)
		}
		val := r.Host
		if h != "host" {
			val = strings.Join(r.Header.Values(h), ",")
		}
		b.WriteString(sigv4.CanonicalHeader(h, val))
	}
	return b.String(), nil
}

// signatureMatches reports whether p's signature is the one secret gives r, with the
// session token outside the canonical query (as AWS IoT has it) or inside it, and
// with the empty payload's hash or UNSIGNED-PAYLOAD.
func signatureMatches(r *http.Request, p presignedQuery, secret string, s credentialScope, headers string) bool {
	key := sigv4.SigningKey(secret, s.day, s.region, s.service)
	scope := sigv4.Scope(s.day, s.region, s.service)
	want := []byte(strings.ToLower(p.signature))
	omits := [][]string{{sigv4.ParamSignature, sigv4.ParamSecurityToken}}
	if p.token != "" {
		omits = append(omits, []string{sigv4.ParamSignature})
	}
	for _, omit := range omits {
		query := sigv4.CanonicalQuery(p.q, omit...)
		for _, payload := range []string{sigv4.EmptyPayloadHash, sigv4.UnsignedPayload} {
			canonical := sigv4.CanonicalRequest(r.Method, sigv4.CanonicalURI(r.URL), query, headers, p.signedHeaders, payload)
			got := sigv4.Signature(key, sigv4.StringToSign(p.date, scope, canonical))
			if hmac.Equal([]byte(got), want) {
				return true
			}
		}
	}
	return false
}
