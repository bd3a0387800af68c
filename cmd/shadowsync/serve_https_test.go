package main

import (
	"context"
	"crypto/tls"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iotdataplane"

	"github.com/shadowsync/shadowsync/localiot"
)

// --https serves the data plane beside the MQTT listeners: an update made with
// aws-sdk-go-v2's iotdataplane client is what an MQTT get then reads.
func TestServeHTTPS(t *testing.T) {
	dir := t.TempDir()
	p := start(t, []string{"AWS_ACCESS_KEY_ID=AKIDLOCAL", "AWS_SECRET_ACCESS_KEY=local-secret", "AWS_SESSION_TOKEN="},
		"serve", "--mqtt", "127.0.0.1:0", "--https", "127.0.0.1:0", "--certs", dir)
	eps := p.banner(t)
	if !strings.HasPrefix(eps["https"], "https://127.0.0.1:") {
		t.Fatalf("banner %v: want https on loopback", eps)
	}
	set, err := localiot.EnsureCerts(dir)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: set.Pool}}
	defer tr.CloseIdleConnections()
	app := iotdataplane.New(iotdataplane.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(eps["https"]),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDLOCAL", "local-secret", ""),
		HTTPClient:   &http.Client{Transport: tr, Timeout: 10 * time.Second},
	})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := app.UpdateThingShadow(ctx, &iotdataplane.UpdateThingShadowInput{
		ThingName: aws.String("Dev-7"), Payload: []byte(`{"state":{"desired":{"on":true}}}`),
	}); err != nil {
		t.Fatalf("UpdateThingShadow: %v", err)
	}
	c := mqttClient(t, eps["mqtt"], "reader", nil)
	if reply := roundTrip(t, c, "$aws/things/Dev-7/shadow/get/accepted", "$aws/things/Dev-7/shadow/get", ``); !strings.Contains(reply, `"desired":{"on":true}`) {
		t.Errorf("MQTT get after the HTTPS update: %s", reply)
	}
	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", code, p.stderr)
	}
}

// --https without an access key is a usage error.
func TestServeHTTPSNeedsKey(t *testing.T) {
	code, out := runToEnd(t, []string{"AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY="}, "serve", "--https", "127.0.0.1:0", "--certs", t.TempDir())
	if code != 2 || !strings.Contains(out, "--https needs --access-key-id") {
		t.Errorf("exit %d, output:\n%s", code, out)
	}
}
