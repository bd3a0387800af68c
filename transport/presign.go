package transport

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// SigV4 constants for AWS IoT's WebSocket gateway
// (docs/protocol.md#connecting-to-aws-iot).
const (
	sigV4Service = "iotdevicegateway"
	// presignExpiry is X-Amz-Expires. The URL is used at once; the value is the one
	// the AWS IoT Device SDK for Python v1 sends, which AWS IoT is known to accept.
	presignExpiry = "86400"
)

// emptyPayloadHash is hex(SHA-256("")), the payload hash signed for the upgrade GET.
var emptyPayloadHash = func() string {
	sum := sha256.Sum256(nil)
	return hex.EncodeToString(sum[:])
}()

// presignURL returns u with a SigV4 presigned query for GET, signed for service
// iotdevicegateway in region at t, with only the host header signed. The session
// token, if any, is appended after signing as X-Amz-Security-Token: AWS IoT leaves it
// out of the canonical request. Errors never carry a secret.
func presignURL(ctx context.Context, u *url.URL, creds aws.Credentials, region string, t time.Time) (string, error) {
	target := *u
	q := url.Values{}
	q.Set("X-Amz-Expires", presignExpiry)
	target.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target.String(), nil)
	if err != nil {
		return "", fmt.Errorf("presign: %w", err)
	}
	token := creds.SessionToken
	creds.SessionToken = ""
	signed, _, err := v4.NewSigner().PresignHTTP(ctx, creds, req, emptyPayloadHash, sigV4Service, region, t)
	if err != nil {
		return "", fmt.Errorf("presign: %w", err)
	}
	if token != "" {
		signed += "&X-Amz-Security-Token=" + sigV4Escape(token)
	}
	return signed, nil
}

// sigV4Escape percent-encodes all but SigV4's unreserved characters, as AWS expects
// for query values.
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

// redactURL returns a presigned URL with its signature and token replaced, for logs
// and errors.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "[unparseable URL]"
	}
	q := u.Query()
	for _, k := range []string{"X-Amz-Signature", "X-Amz-Security-Token", "X-Amz-Credential"} {
		if q.Has(k) {
			q.Set(k, "redacted")
		}
	}
	u.RawQuery = q.Encode()
	return u.String()
}
