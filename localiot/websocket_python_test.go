package localiot

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"
)

// pythonSDKHost is the kind of host the AWS IoT Device SDK for Python v1 connects to
// over WebSocket: it refuses an endpoint that does not look like an AWS IoT one, and
// sends and signs the host without the port. A local setup maps such a name to
// 127.0.0.1; the test connects to 127.0.0.1 directly and sends this name.
const pythonSDKHost = "example-ats.iot.us-east-1.amazonaws.com"

// pythonSDKURLPath builds the request target the way the AWS IoT Device SDK for Python
// v1 does (AWSIoTPythonSDK/core/protocol/connection/cores.py, SigV4Core): the query
// parameters in a fixed order, the credential scope's slashes written as %2F, service
// "iotdata", X-Amz-Expires=86400, only host signed, the empty payload's hash; the
// signature appended, then the session token (if any) escaped as Python's
// urllib.parse.quote does, which leaves "/" as it is.
func pythonSDKURLPath(keyID, secret, token string, now time.Time) string {
	const region, service = "us-east-1", "iotdata"
	day, stamp := now.UTC().Format("20060102"), now.UTC().Format("20060102T150405Z")
	query := "X-Amz-Algorithm=AWS4-HMAC-SHA256" +
		"&X-Amz-Credential=" + keyID + "%2F" + day + "%2F" + region + "%2F" + service + "%2Faws4_request" +
		"&X-Amz-Date=" + stamp +
		"&X-Amz-Expires=86400" +
		"&X-Amz-SignedHeaders=host"
	emptyHash := sha256.Sum256(nil)
	canonical := "GET\n/mqtt\n" + query + "\nhost:" + pythonSDKHost + "\n\nhost\n" + hex.EncodeToString(emptyHash[:])
	canonicalHash := sha256.Sum256([]byte(canonical))
	toSign := "AWS4-HMAC-SHA256\n" + stamp + "\n" + day + "/" + region + "/" + service + "/aws4_request\n" + hex.EncodeToString(canonicalHash[:])
	mac := func(key []byte, msg string) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(msg))
		return h.Sum(nil)
	}
	key := mac(mac(mac(mac([]byte("AWS4"+secret), day), region), service), "aws4_request")
	target := "/mqtt?" + query + "&X-Amz-Signature=" + hex.EncodeToString(mac(key, toSign))
	if token != "" {
		target += "&X-Amz-Security-Token=" + strings.ReplaceAll(url.QueryEscape(token), "%2F", "/")
	}
	return target
}

// pythonSDKHandshake opens a WebSocket on conn as the AWS IoT Device SDK for Python v1
// does (SecuredWebsocketCore._handShake): a Sec-WebSocket-Key that is the base64 of 128
// random bytes, sub-protocol mqttv3.1, a permessage-deflate offer, the whole request
// in one write; then one read of at most 1024 bytes for the response, which must hold
// "101 switching protocols", "upgrade: websocket" and "connection: upgrade" in any
// case, and "sec-websocket-accept: " in lower case exactly, followed by the accept
// value for the key. It returns what is wrong, or "".
func pythonSDKHandshake(t *testing.T, conn net.Conn, target string) string {
	t.Helper()
	raw := make([]byte, 128)
	_, _ = rand.Read(raw)
	key := base64.StdEncoding.EncodeToString(raw)
	request := "GET " + target + " HTTP/1.1\r\n" +
		"Host: " + pythonSDKHost + "\r\n" +
		"Connection: Upgrade\r\n" +
		"Upgrade: websocket\r\n" +
		"Sec-WebSocket-Version: 13\r\n" +
		"Sec-WebSocket-Protocol: mqttv3.1\r\n" +
		"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" +
		"sec-websocket-key: " + key + "\r\n\r\n"
	_ = conn.SetDeadline(time.Now().Add(wait))
	if _, err := conn.Write([]byte(request)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1024)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("reading the upgrade response: %v", err)
	}
	response := bytes.TrimSpace(buf[:n])
	lower := bytes.ToLower(response)
	for _, want := range []string{"101 switching protocols", "upgrade: websocket", "connection: upgrade"} {
		if !bytes.Contains(lower, []byte(want)) {
			return "response has no " + want + ": " + string(response)
		}
	}
	if bytes.Contains(lower, []byte("sec-websocket-extensions")) {
		return "response negotiates an extension: " + string(response)
	}
	const acceptName = "sec-websocket-accept: "
	i := bytes.Index(response, []byte(acceptName))
	if i < 0 {
		return "response has no " + acceptName + ": " + string(response)
	}
	got, _, _ := bytes.Cut(response[i+len(acceptName):], []byte("\r\n"))
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	if want := base64.StdEncoding.EncodeToString(sum[:]); string(bytes.TrimSpace(got)) != want {
		return "sec-websocket-accept " + string(got) + ", want " + want
	}
	return ""
}

// The AWS IoT Device SDK for Python v1, unmodified, connects over wss with its own
// handshake and SigV4 signer, then speaks MQTT: a 128-byte key is accepted and the
// response's header names are in lower case. AWS IoT accepts that SDK, so localiot
// must too. The SDK cannot be installed here, so this client does what it does.
func TestPythonSDKv1WebSocket(t *testing.T) {
	_, target := startWSTarget(t, true, nil)
	for _, cred := range []Credential{wsThing, wsOperator} {
		t.Run(cred.AccessKeyID, func(t *testing.T) {
			conn := target.dial(t)
			path := pythonSDKURLPath(cred.AccessKeyID, cred.SecretAccessKey, cred.SessionToken, time.Now())
			if problem := pythonSDKHandshake(t, conn, path); problem != "" {
				t.Fatal(problem)
			}
			c := &rawWS{conn: conn, br: bufio.NewReader(conn)}
			id := cred.Thing // a thing connects with its own name as client ID
			if id == "" {
				id = "py-operator"
			}
			c.binary(t, connectPacket(id))
			c.expectFrame(t, opBinary, connack)
			c.binary(t, []byte{0xc0, 0x00}) // PINGREQ
			c.expectFrame(t, opBinary, []byte{0xd0, 0x00})
		})
	}
}
