package localiot

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shadowsync/shadowsync/internal/sigv4"
)

// verifyHeader returns the credential that signed r in its Authorization header, and
// the signature's scope (whose service tells the data plane from the control plane), as
// the AWS SDKs sign data plane requests, or an error saying why r is refused. The
// canonical request is rebuilt from r: method, path, query, the signed headers and the
// payload's hash, which is X-Amz-Content-Sha256 when given (UNSIGNED-PAYLOAD, or the
// body's hash) and otherwise the hash of body. The signing time is X-Amz-Date, within
// the verifier's skew of now; a temporary credential's X-Amz-Security-Token must match.
func (v *sigV4Verifier) verifyHeader(r *http.Request, body []byte) (Credential, credentialScope, error) {
	auth := r.Header.Values("Authorization")
	if len(auth) != 1 {
		return Credential{}, credentialScope{}, fmt.Errorf("%w: want one Authorization header, got %d", errSigV4, len(auth))
	}
	algorithm, params, _ := strings.Cut(auth[0], " ")
	if algorithm != sigv4.Algorithm {
		return Credential{}, credentialScope{}, fmt.Errorf("%w: algorithm %q", errSigV4, algorithm)
	}
	var credential, signedHeaders, signature string
	for part := range strings.SplitSeq(params, ",") {
		name, val, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch name {
		case "Credential":
			credential = val
		case "SignedHeaders":
			signedHeaders = val
		case "Signature":
			signature = val
		}
	}
	if credential == "" || signedHeaders == "" || signature == "" {
		return Credential{}, credentialScope{}, fmt.Errorf("%w: Authorization lacks Credential, SignedHeaders or Signature", errSigV4)
	}
	cred, scope, err := v.checkScope(credential)
	if err != nil {
		return Credential{}, credentialScope{}, err
	}
	amzDate := r.Header.Get("X-Amz-Date")
	signed, err := time.Parse(sigv4.TimeFormat, amzDate)
	if err != nil || signed.Format(sigv4.DayFormat) != scope.day {
		return Credential{}, credentialScope{}, fmt.Errorf("%w: X-Amz-Date %q does not match the credential scope", errSigV4, amzDate)
	}
	if now := v.now(); signed.After(now.Add(v.skew)) || now.After(signed.Add(v.skew)) {
		return Credential{}, credentialScope{}, fmt.Errorf("%w: X-Amz-Date %s is more than %v from now", errSigV4, amzDate, v.skew)
	}
	if err := checkToken(cred, r.Header.Get("X-Amz-Security-Token")); err != nil {
		return Credential{}, credentialScope{}, err
	}
	headers, err := signedHeaderLines(r, signedHeaders)
	if err != nil {
		return Credential{}, credentialScope{}, err
	}
	sum := sha256.Sum256(body)
	payload := hex.EncodeToString(sum[:])
	if h := r.Header.Get("X-Amz-Content-Sha256"); h == sigv4.UnsignedPayload {
		payload = h
	} else if h != "" && !strings.EqualFold(h, payload) {
		return Credential{}, credentialScope{}, fmt.Errorf("%w: X-Amz-Content-Sha256 is not the body's hash", errSigV4)
	}
	canonical := sigv4.CanonicalRequest(r.Method, sigv4.CanonicalURI(r.URL), sigv4.CanonicalQuery(r.URL.Query()), headers, signedHeaders, payload)
	key := sigv4.SigningKey(cred.SecretAccessKey, scope.day, scope.region, scope.service)
	want := sigv4.Signature(key, sigv4.StringToSign(amzDate, sigv4.Scope(scope.day, scope.region, scope.service), canonical))
	if !hmac.Equal([]byte(want), []byte(strings.ToLower(signature))) {
		return Credential{}, credentialScope{}, fmt.Errorf("%w: signature does not match for access key ID %q", errSigV4, cred.AccessKeyID)
	}
	return cred, scope, nil
}

// signedHeaderLines returns the canonical header lines of r's signed headers, which
// must be lower case, sorted, and include host. Go's server moves Host and, for some
// requests, Content-Length out of the header map; they are read from r.
func signedHeaderLines(r *http.Request, signedHeaders string) (string, error) {
	names := strings.Split(signedHeaders, ";")
	if !slices.Contains(names, "host") || !slices.IsSorted(names) {
		return "", fmt.Errorf("%w: signed headers must be sorted and include host", errSigV4)
	}
	var b strings.Builder
	for _, h := range names {
		if h == "" || h != strings.ToLower(h) {
			return "", fmt.Errorf("%w: malformed signed headers", errSigV4)
		}
		var val string
		switch vals := r.Header.Values(h); {
		case h == "host":
			val = r.Host
		case h == "content-length" && len(vals) == 0 && r.ContentLength >= 0:
			val = strconv.FormatInt(r.ContentLength, 10)
		default:
			val = strings.Join(vals, ",")
		}
		b.WriteString(sigv4.CanonicalHeader(h, val))
	}
	return b.String(), nil
}
