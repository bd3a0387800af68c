package sigv4

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// sdkPresign presigns u as PresignIoT should, with aws-sdk-go-v2's signer: GET, the
// empty payload's hash, service iotdevicegateway, the token appended after signing.
func sdkPresign(t *testing.T, u *url.URL, c Credentials, region string, at time.Time, expires time.Duration) string {
	t.Helper()
	target := *u
	if expires > 0 {
		q := target.Query()
		q.Set(ParamExpires, strconv.Itoa(int(expires/time.Second)))
		target.RawQuery = q.Encode()
	}
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, target.String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	creds := aws.Credentials{AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey}
	signed, _, err := v4.NewSigner().PresignHTTP(t.Context(), creds, req, EmptyPayloadHash, ServiceIoTDeviceGateway, region, at)
	if err != nil {
		t.Fatal(err)
	}
	if c.SessionToken != "" {
		signed += "&" + ParamSecurityToken + "=" + Escape(c.SessionToken)
	}
	return signed
}

// TestPresignIoTMatchesSDK: PresignIoT gives the URL aws-sdk-go-v2's signer gives, for
// hosts with and without ports, odd paths, existing queries, tokens and expiries.
func TestPresignIoTMatchesSDK(t *testing.T) {
	at := time.Date(2024, 5, 6, 7, 8, 9, 0, time.FixedZone("X", 3600))
	creds := Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "secret/key+x"}
	urls := []string{
		"wss://abc-ats.iot.us-east-1.amazonaws.com/mqtt",
		"wss://127.0.0.1:8443/mqtt",
		"ws://[::1]:8080/mqtt",
		"wss://example.com",
		"wss://example.com/a%20b/c+d@e",
		"wss://example.com/mqtt?x=1&a=b%20c&x=0",
	}
	for _, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		for _, token := range []string{"", "tok/en+with=chars"} {
			for _, expires := range []time.Duration{0, 24 * time.Hour} {
				c := creds
				c.SessionToken = token
				got := PresignIoT(u, c, "eu-west-1", at, expires)
				if want := sdkPresign(t, u, c, "eu-west-1", at, expires); got != want {
					t.Errorf("%s, token %q, expires %v:\n got %s\nwant %s", raw, token, expires, got, want)
				}
			}
		}
	}
}

// TestPresignIoTToken: the token follows the signature, escaped, and leaves the
// signature as it was without one.
func TestPresignIoTToken(t *testing.T) {
	u := &url.URL{Scheme: "wss", Host: "h.example", Path: "/mqtt"}
	at := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	c := Credentials{AccessKeyID: "AKID", SecretAccessKey: "s"}
	without := PresignIoT(u, c, "us-east-1", at, time.Hour)
	c.SessionToken = "a/b+c= d"
	with := PresignIoT(u, c, "us-east-1", at, time.Hour)
	if want := without + "&X-Amz-Security-Token=a%2Fb%2Bc%3D%20d"; with != want {
		t.Errorf("got %s\nwant %s", with, want)
	}
	if !strings.Contains(without, "X-Amz-Credential=AKID%2F20240506%2Fus-east-1%2Fiotdevicegateway%2Faws4_request") {
		t.Errorf("credential scope missing: %s", without)
	}
}
