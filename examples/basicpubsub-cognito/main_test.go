package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shadowsync/shadowsync/cmdkit"
	"github.com/shadowsync/shadowsync/internal/testserver"
	"github.com/shadowsync/shadowsync/localiot"
)

func runExample(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	var out strings.Builder
	err := run(ctx, args, &out)
	return out.String(), err
}

// fakeCognito is Amazon Cognito Identity's JSON protocol for the two calls the
// example makes, handing out one identity and fixed temporary credentials.
type fakeCognito struct {
	mu    sync.Mutex
	calls []string // X-Amz-Target of each request
	pools []string // IdentityPoolId of each GetId
	auth  []string // Authorization headers seen: the calls must be unsigned
}

const (
	fakeKeyID    = "ASIAFAKECOGNITO"
	fakeSecret   = "fake-cognito-secret"
	fakeToken    = "fake-cognito-session-token"
	fakeIdentity = "eu-west-1:11111111-2222-3333-4444-555555555555"
)

func (f *fakeCognito) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body map[string]any
	_ = json.NewDecoder(r.Body).Decode(&body)
	target := r.Header.Get("X-Amz-Target")
	f.mu.Lock()
	f.calls = append(f.calls, target)
	if a := r.Header.Get("Authorization"); a != "" {
		f.auth = append(f.auth, a)
	}
	if target == "AWSCognitoIdentityService.GetId" {
		f.pools = append(f.pools, fmt.Sprint(body["IdentityPoolId"]))
	}
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	switch target {
	case "AWSCognitoIdentityService.GetId":
		fmt.Fprintf(w, `{"IdentityId":%q}`, fakeIdentity)
	case "AWSCognitoIdentityService.GetCredentialsForIdentity":
		if body["IdentityId"] != fakeIdentity {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"__type":"ResourceNotFoundException","message":"no identity %v"}`, body["IdentityId"])
			return
		}
		fmt.Fprintf(w, `{"IdentityId":%q,"Credentials":{"AccessKeyId":%q,"SecretKey":%q,"SessionToken":%q,"Expiration":%d}}`,
			fakeIdentity, fakeKeyID, fakeSecret, fakeToken, time.Now().Add(time.Hour).Unix())
	default:
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"__type":"UnknownOperationException","message":%q}`, target)
	}
}

func (f *fakeCognito) check(t *testing.T) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	want := []string{"AWSCognitoIdentityService.GetId", "AWSCognitoIdentityService.GetCredentialsForIdentity"}
	if strings.Join(f.calls, " ") != strings.Join(want, " ") {
		t.Errorf("Cognito calls %q, want %q (one identity, credentials cached)", f.calls, want)
	}
	if len(f.pools) != 1 || f.pools[0] != "eu-west-1:pool" {
		t.Errorf("GetId for pools %q", f.pools)
	}
	if len(f.auth) > 0 {
		t.Errorf("Cognito calls were signed: %q", f.auth)
	}
}

func TestStandInCredentialsOnEmbeddedLocaliot(t *testing.T) {
	out, err := runExample(t, "--count", "2")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{
		"static credentials stand in for Cognito",
		"access key ASIALOCALCOGNITO, session token true",
		"over WebSocket as basicPubSub_CognitoSTS",
		`received from sdk/test/go/cognito: {"message":"Hello from Cognito","sequence":2}`,
		"all 2 messages came back",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
}

// The Cognito provider's credentials (from a stand-in Cognito service) sign the
// WebSocket URL to the embedded localiot, which accepts the key they carry.
func TestCognitoCredentialsOnEmbeddedLocaliot(t *testing.T) {
	cognito := &fakeCognito{}
	srv := httptest.NewServer(cognito)
	defer srv.Close()
	out, err := runExample(t, "--identity-pool-id", "eu-west-1:pool", "--cognito-endpoint", srv.URL, "--count", "1")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out, "credentials from Cognito identity "+fakeIdentity+": access key "+fakeKeyID+", session token true") ||
		!strings.Contains(out, "all 1 messages came back") {
		t.Errorf("output:\n%s", out)
	}
	cognito.check(t)
}

// Against a wss:// endpoint (a localiot that knows the Cognito key, standing in for
// AWS IoT), with --ca and --region as for AWS.
func TestCognitoCredentialsAgainstAWSSEndpoint(t *testing.T) {
	cognito := &fakeCognito{}
	cognitoSrv := httptest.NewServer(cognito)
	defer cognitoSrv.Close()

	dir := t.TempDir()
	certs, err := localiot.EnsureCerts(dir)
	if err != nil {
		t.Fatal(err)
	}
	iot := testserver.Start(t, localiot.Options{WebSocket: &localiot.WebSocketListener{
		Certificate: &certs.Server, Region: "eu-west-1",
		Credentials: []localiot.Credential{{AccessKeyID: fakeKeyID, SecretAccessKey: fakeSecret, SessionToken: fakeToken}},
	}})

	ep := iot.Endpoints().WebSocket
	out, err := runExample(t, "--endpoint", ep, "--ca", filepath.Join(dir, "ca.pem"), "--region", "eu-west-1",
		"--identity-pool-id", "eu-west-1:pool", "--cognito-endpoint", cognitoSrv.URL, "--client-id", "cognito-test", "--count", "2")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out, "connected to "+ep+" over WebSocket as cognito-test") || !strings.Contains(out, "all 2 messages came back") {
		t.Errorf("output:\n%s", out)
	}
	cognito.check(t)
}

func TestCognitoErrorsAreReported(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"__type":"ResourceNotFoundException","message":"IdentityPool 'eu-west-1:gone' not found."}`)
	}))
	defer srv.Close()
	out, err := runExample(t, "--identity-pool-id", "eu-west-1:gone", "--cognito-endpoint", srv.URL)
	if err == nil || !strings.Contains(err.Error(), "cognito GetId for pool eu-west-1:gone") || !strings.Contains(err.Error(), "not found") {
		t.Errorf("error %v, output:\n%s", err, out)
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{
		{"--endpoint", "wss://example.com/mqtt"}, // no identity pool
		{"--identity-pool-id", "no-region"},
		{"--count", "0"},
	} {
		if _, err := runExample(t, args...); !errors.Is(err, cmdkit.ErrUsage) {
			t.Errorf("%q: %v, want a usage error", args, err)
		}
	}
}
