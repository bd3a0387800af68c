package localiot

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
	"github.com/gorilla/websocket"

	"github.com/shadowsync/shadowsync/internal/sigv4"
)

// Test credentials; the secrets are made up.
var (
	wsOperator = Credential{AccessKeyID: "AKIDOPERATOR", SecretAccessKey: "operator/secret+key", SessionToken: "token/with+special=chars"}
	wsThing    = Credential{AccessKeyID: "AKIDTHING", SecretAccessKey: "thing-secret", Thing: "ws-thing"}
)

// presign returns wsURL presigned with SigV4 as AWS IoT clients do: GET, only host
// signed, the empty payload's hash, service iotdevicegateway, and the session token
// appended after signing. expires 0 leaves X-Amz-Expires out.
func presign(t *testing.T, wsURL, keyID, secret, token string, at time.Time, expires time.Duration) string {
	t.Helper()
	u, err := url.Parse(strings.Replace(wsURL, "ws://", "http://", 1))
	if err != nil {
		t.Fatal(err)
	}
	if expires > 0 {
		u.RawQuery = "X-Amz-Expires=" + strconv.Itoa(int(expires.Seconds()))
	}
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, u.String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	signed, _, err := v4.NewSigner().PresignHTTP(t.Context(), aws.Credentials{AccessKeyID: keyID, SecretAccessKey: secret},
		req, sigv4.EmptyPayloadHash, sigv4.ServiceIoTDeviceGateway, "us-east-1", at)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		signed += "&" + sigv4.ParamSecurityToken + "=" + url.QueryEscape(token)
	}
	return strings.Replace(signed, "http://", "ws://", 1)
}

func startWSServer(t *testing.T) string {
	t.Helper()
	s := startServer(t, Options{WebSocket: &WebSocketListener{Credentials: []Credential{wsOperator, wsThing}}})
	return s.Endpoints().WebSocket
}

// dialWS opens a raw WebSocket to u and returns the HTTP status of the upgrade.
func dialWS(t *testing.T, u string, subprotocols ...string) (status int, protocol string) {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: wait, Subprotocols: subprotocols}
	c, resp, err := d.DialContext(t.Context(), u, nil)
	if c != nil {
		protocol = c.Subprotocol()
		c.Close()
	}
	if resp == nil {
		t.Fatalf("dial %s: no HTTP response: %v", u, err)
	}
	resp.Body.Close()
	return resp.StatusCode, protocol
}

func TestWebSocketAccepted(t *testing.T) {
	base := startWSServer(t)
	now := time.Now()
	op := mustConnect(t, presign(t, base, wsOperator.AccessKeyID, wsOperator.SecretAccessKey, wsOperator.SessionToken, now, 0), "ws-op")
	op.mustSubscribe(t, "telemetry/#")
	other := mustConnect(t, presign(t, base, wsOperator.AccessKeyID, wsOperator.SecretAccessKey, wsOperator.SessionToken, now, time.Hour), "ws-op-2")
	other.publish(t, "telemetry/a", "hello")
	op.expect(t, "telemetry/a", "hello")

	for _, proto := range []string{"mqtt", "mqttv3.1"} {
		t.Run("subprotocol "+proto, func(t *testing.T) {
			status, got := dialWS(t, presign(t, base, wsThing.AccessKeyID, wsThing.SecretAccessKey, "", now, 0), proto)
			if status != http.StatusSwitchingProtocols || got != proto {
				t.Errorf("upgrade: status %d, protocol %q; want 101, %q", status, got, proto)
			}
		})
	}

	t.Run("thing credential is a thing", func(t *testing.T) {
		thing := mustConnect(t, presign(t, base, wsThing.AccessKeyID, wsThing.SecretAccessKey, "", now, 0), "ws-thing")
		got := thing.subscribe(t, 1, "$aws/things/ws-thing/shadow/update/delta", "$aws/things/other/shadow/update/delta")
		if got["$aws/things/ws-thing/shadow/update/delta"] != 1 || got["$aws/things/other/shadow/update/delta"] != 0x80 {
			t.Errorf("SUBACK codes %v, want own shadow granted and other refused", got)
		}
	})
}

func TestWebSocketRefused(t *testing.T) {
	base := startWSServer(t)
	now := time.Now()
	good := func(at time.Time, expires time.Duration) string {
		return presign(t, base, wsOperator.AccessKeyID, wsOperator.SecretAccessKey, wsOperator.SessionToken, at, expires)
	}
	tests := []struct {
		name string
		url  string
	}{
		{"no signature", base},
		{"tampered signature", flipSignature(good(now, 0))},
		{"tampered query", good(now, 0) + "&extra=1"},
		{"expired", good(now.Add(-defaultMaxSkew-time.Minute-time.Minute), time.Minute)},
		{"old date without expiry", good(now.Add(-defaultMaxSkew-time.Minute), 0)},
		{"date in the future", good(now.Add(defaultMaxSkew+time.Minute), 0)},
		{"wrong secret", presign(t, base, wsOperator.AccessKeyID, "not-the-secret", wsOperator.SessionToken, now, 0)},
		{"unknown access key", presign(t, base, "AKIDUNKNOWN", wsOperator.SecretAccessKey, wsOperator.SessionToken, now, 0)},
		{"missing session token", presign(t, base, wsOperator.AccessKeyID, wsOperator.SecretAccessKey, "", now, 0)},
		{"wrong session token", presign(t, base, wsOperator.AccessKeyID, wsOperator.SecretAccessKey, "other-token", now, 0)},
		{"token for a long-term key", presign(t, base, wsThing.AccessKeyID, wsThing.SecretAccessKey, "some-token", now, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if status, _ := dialWS(t, tt.url, "mqtt"); status != http.StatusForbidden {
				t.Errorf("upgrade status %d, want 403", status)
			}
		})
	}
	t.Run("paho sees the refusal", func(t *testing.T) {
		if _, err := connect(t, flipSignature(good(now, 0)), "refused"); err == nil {
			t.Error("connect succeeded with a tampered URL")
		}
	})
}

// flipSignature changes the first hex digit of the URL's X-Amz-Signature.
func flipSignature(u string) string {
	i := strings.Index(u, sigv4.ParamSignature+"=") + len(sigv4.ParamSignature) + 1
	c := byte('0')
	if u[i] == '0' {
		c = '1'
	}
	return u[:i] + string(c) + u[i+1:]
}
