package sigv4

import (
	"cmp"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"slices"
	"strings"
)

// Query parameters of a SigV4 presigned URL.
const (
	ParamAlgorithm     = "X-Amz-Algorithm"
	ParamCredential    = "X-Amz-Credential"
	ParamDate          = "X-Amz-Date"
	ParamExpires       = "X-Amz-Expires"
	ParamSignedHeaders = "X-Amz-SignedHeaders"
	ParamSignature     = "X-Amz-Signature"
	ParamSecurityToken = "X-Amz-Security-Token"
)

// Fixed values of the SigV4 algorithm.
const (
	// Algorithm is the only signing algorithm implemented, named in X-Amz-Algorithm
	// and the string to sign.
	Algorithm = "AWS4-HMAC-SHA256"
	// TimeFormat is the layout of X-Amz-Date, the signing time in UTC.
	TimeFormat = "20060102T150405Z"
	// DayFormat is the layout of the day in the credential scope.
	DayFormat = "20060102"
	// Terminator ends every credential scope.
	Terminator = "aws4_request"
	// EmptyPayloadHash is hex(SHA-256("")), the payload hash of a bodiless request
	// such as the WebSocket upgrade GET.
	EmptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	// UnsignedPayload stands in for the payload hash when a client leaves the body
	// unsigned.
	UnsignedPayload = "UNSIGNED-PAYLOAD"
	// ServiceIoTDeviceGateway is the service name AWS IoT's WebSocket endpoint
	// expects in the credential scope.
	ServiceIoTDeviceGateway = "iotdevicegateway"
)

// Escape percent-encodes every byte except SigV4's unreserved characters
// A-Z a-z 0-9 - _ . ~, with upper-case hex, as SigV4 wants for query names, query
// values and path segments.
func Escape(s string) string {
	return escape(s, false)
}

// escape is Escape, leaving '/' alone when keepSlash is set.
func escape(s string, keepSlash bool) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if unreserved(c) || keepSlash && c == '/' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

// unreserved reports whether c is one of the characters SigV4 never escapes.
func unreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '-' || c == '_' || c == '.' || c == '~'
}

// CanonicalURI is u's path as it appears in the canonical request: the escaped path
// escaped once more ("/" when empty), since every service but S3 has it encoded
// twice.
func CanonicalURI(u *url.URL) string {
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	return escape(path, true)
}

// CanonicalQuery encodes q, less the parameters named in omit, as SigV4's canonical
// query string: every name and value escaped, pairs sorted by name and then value.
// A presigned URL's query is this string followed by its signature.
func CanonicalQuery(q url.Values, omit ...string) string {
	type pair struct{ name, val string }
	pairs := make([]pair, 0, len(q))
	for name, vals := range q {
		if slices.Contains(omit, name) {
			continue
		}
		for _, val := range vals {
			pairs = append(pairs, pair{Escape(name), Escape(val)})
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

// CanonicalHeader is one line of the canonical headers: the lower-case name, a colon
// and the value with its runs of spaces reduced to one and its ends trimmed.
func CanonicalHeader(name, value string) string {
	return strings.ToLower(name) + ":" + strings.Join(strings.Fields(value), " ") + "\n"
}

// CanonicalRequest joins a request's canonical parts, each already encoded: headers
// is the CanonicalHeader lines of the signed headers, signedHeaders their names
// joined by ";".
func CanonicalRequest(method, uri, query, headers, signedHeaders, payloadHash string) string {
	return strings.Join([]string{method, uri, query, headers, signedHeaders, payloadHash}, "\n")
}

// Scope is the credential scope for day (DayFormat), region and service.
func Scope(day, region, service string) string {
	return day + "/" + region + "/" + service + "/" + Terminator
}

// StringToSign is what the signing key signs: the algorithm, amzDate (TimeFormat),
// the credential scope and the hex SHA-256 of the canonical request.
func StringToSign(amzDate, scope, canonicalRequest string) string {
	sum := sha256.Sum256([]byte(canonicalRequest))
	return strings.Join([]string{Algorithm, amzDate, scope, hex.EncodeToString(sum[:])}, "\n")
}

// SigningKey derives the key that signs for one day (DayFormat), region and service
// from a secret access key.
func SigningKey(secret, day, region, service string) []byte {
	k := hmacSHA256([]byte("AWS4"+secret), day)
	k = hmacSHA256(k, region)
	k = hmacSHA256(k, service)
	return hmacSHA256(k, Terminator)
}

// Signature is the lower-case hex HMAC-SHA256 of stringToSign under key.
func Signature(key []byte, stringToSign string) string {
	return hex.EncodeToString(hmacSHA256(key, stringToSign))
}

// hmacSHA256 is HMAC-SHA256 of data under key.
func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}
