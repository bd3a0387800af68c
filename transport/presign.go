package transport

import (
	"net/url"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/shadowsync/shadowsync/internal/sigv4"
)

// presignExpiry is X-Amz-Expires. The URL is used at once; the value is the one the
// AWS IoT Device SDK for Python v1 sends, which AWS IoT is known to accept.
const presignExpiry = 24 * time.Hour

// presignURL returns u with a SigV4 presigned query for GET, signed for service
// iotdevicegateway in region at t, with only the host header signed. The session
// token, if any, is appended after signing as X-Amz-Security-Token: AWS IoT leaves it
// out of the canonical request (docs/protocol.md#connecting-to-aws-iot).
func presignURL(u *url.URL, creds aws.Credentials, region string, t time.Time) string {
	c := sigv4.Credentials{AccessKeyID: creds.AccessKeyID, SecretAccessKey: creds.SecretAccessKey, SessionToken: creds.SessionToken}
	return sigv4.PresignIoT(u, c, region, t, presignExpiry)
}

// redactURL returns a presigned URL with its signature and token replaced, for logs
// and errors.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "[unparseable URL]"
	}
	q := u.Query()
	for _, k := range []string{sigv4.ParamSignature, sigv4.ParamSecurityToken, sigv4.ParamCredential} {
		if q.Has(k) {
			q.Set(k, "redacted")
		}
	}
	u.RawQuery = q.Encode()
	return u.String()
}
