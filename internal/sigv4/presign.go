package sigv4

import (
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Credentials are the AWS credentials a URL is presigned with. The type is the
// package's own so that it needs no AWS SDK.
type Credentials struct {
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string // "" for long-term credentials
}

// PresignIoT returns u presigned for a GET in the way AWS IoT's WebSocket gateway
// expects: service iotdevicegateway, only the host header signed (u.Host as given),
// the empty payload's hash, X-Amz-Expires of expires (left out when 0), and the
// session token appended after the signature as X-Amz-Security-Token, outside the
// canonical request
// (https://docs.aws.amazon.com/iot/latest/developerguide/protocols.html).
// Parameters already in u's query are signed too.
func PresignIoT(u *url.URL, c Credentials, region string, t time.Time, expires time.Duration) string {
	t = t.UTC()
	day, amzDate := t.Format(DayFormat), t.Format(TimeFormat)
	scope := Scope(day, region, ServiceIoTDeviceGateway)
	q := u.Query()
	q.Set(ParamAlgorithm, Algorithm)
	q.Set(ParamCredential, c.AccessKeyID+"/"+scope)
	q.Set(ParamDate, amzDate)
	if expires > 0 {
		q.Set(ParamExpires, strconv.FormatInt(int64(expires/time.Second), 10))
	}
	q.Set(ParamSignedHeaders, "host")
	query := CanonicalQuery(q)
	canonical := CanonicalRequest(http.MethodGet, CanonicalURI(u), query, CanonicalHeader("host", u.Host), "host", EmptyPayloadHash)
	key := SigningKey(c.SecretAccessKey, day, region, ServiceIoTDeviceGateway)
	query += "&" + ParamSignature + "=" + Signature(key, StringToSign(amzDate, scope, canonical))
	if c.SessionToken != "" {
		query += "&" + ParamSecurityToken + "=" + Escape(c.SessionToken)
	}
	signed := *u
	signed.RawQuery = query
	return signed.String()
}
