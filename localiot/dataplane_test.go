package localiot

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iotdataplane"
	"github.com/aws/aws-sdk-go-v2/service/iotdataplane/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/shadowsync/shadowsync/reconciler"
	"github.com/shadowsync/shadowsync/shadowstate"
	"github.com/shadowsync/shadowsync/transport"
)

// The data plane tests' credentials: an operator key and a key for thing "sensor-1".
var (
	dpOperator = Credential{AccessKeyID: "AKIDOPERATOR", SecretAccessKey: "operator-secret"}
	dpThing    = Credential{AccessKeyID: "AKIDSENSOR1", SecretAccessKey: "sensor-secret", Thing: "sensor-1"}
)

// startDataPlane starts a server with a plain MQTT listener and the HTTPS data plane,
// and returns it with the certificates whose CA the clients trust.
func startDataPlane(t *testing.T, opts Options) (*Server, *CertSet) {
	t.Helper()
	certs, err := EnsureCerts("")
	if err != nil {
		t.Fatal(err)
	}
	opts.Plain = &PlainListener{}
	opts.HTTPS = &HTTPSListener{Certificate: certs.Server, Credentials: []Credential{dpOperator, dpThing}}
	return startServer(t, opts), certs
}

// dataClient returns aws-sdk-go-v2's IoT data plane client for srv, signing with cred,
// over an HTTP client that trusts localiot's CA and makes one attempt per call.
func dataClient(t *testing.T, srv *Server, certs *CertSet, cred Credential, optFns ...func(*iotdataplane.Options)) *iotdataplane.Client {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: certs.Pool}, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	return iotdataplane.New(iotdataplane.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String(srv.Endpoints().HTTPS),
		Credentials:      credentials.NewStaticCredentialsProvider(cred.AccessKeyID, cred.SecretAccessKey, cred.SessionToken),
		HTTPClient:       &http.Client{Transport: tr, Timeout: wait},
		RetryMaxAttempts: 1,
	}, optFns...)
}

// wantAPIError fails the test unless err is the API error errType with HTTP status code.
func wantAPIError(t *testing.T, what string, err error, status int, errType string) {
	t.Helper()
	var api smithy.APIError
	if !errors.As(err, &api) {
		t.Fatalf("%s: got %v, want %s", what, err, errType)
	}
	if api.ErrorCode() != errType {
		t.Errorf("%s: error code %q (%v), want %q", what, api.ErrorCode(), err, errType)
	}
	var resp *smithyhttp.ResponseError
	if !errors.As(err, &resp) || resp.HTTPStatusCode() != status {
		t.Errorf("%s: %v, want HTTP status %d", what, err, status)
	}
}

// Thermostat is the device type of the end-to-end test: an app desires Target, the
// device reports it.
type Thermostat struct {
	Target float64 `json:"target"`
}

// TestDataPlaneWithDevice: an app on the HTTPS data plane (aws-sdk-go-v2's iotdataplane)
// and a device on MQTT (a reconciler) share one shadow: the app's update reaches the
// device as a delta, the device's report is what the app reads, and MQTT subscribers
// see the accepted, delta and documents messages of the HTTPS update with the versions
// the HTTPS answers carry. Rejected HTTPS requests are answered with AWS's typed errors
// and publish nothing.
func TestDataPlaneWithDevice(t *testing.T) {
	srv, certs := startDataPlane(t, Options{})
	ctx := t.Context()
	const thing = "thermostat-1"

	watcher := mustConnect(t, srv.Endpoints().Plain, "watcher")
	prefix := "$aws/things/" + thing + "/shadow/"
	watcher.mustSubscribe(t, prefix+"update/accepted", prefix+"update/rejected", prefix+"update/delta", prefix+"update/documents",
		prefix+"delete/accepted", prefix+"delete/rejected")

	mgr, err := reconciler.NewManager(transport.Config{Endpoint: srv.Endpoints().Plain, ClientID: thing}, reconciler.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = reconciler.Register(mgr, reconciler.ControllerOptions{Things: []string{thing}},
		reconciler.ReconcilerFunc[Thermostat](func(_ context.Context, req reconciler.Request[Thermostat]) (reconciler.Result, error) {
			req.Reported.Target = req.Desired.Target
			return reconciler.Result{}, nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	mgrCtx, stopMgr := context.WithCancel(ctx)
	mgrDone := make(chan error, 1)
	go func() { mgrDone <- mgr.Start(mgrCtx) }()
	t.Cleanup(func() {
		stopMgr()
		select {
		case err := <-mgrDone:
			if err != nil {
				t.Errorf("manager: %v", err)
			}
		case <-time.After(wait):
			t.Error("manager did not stop")
		}
	})
	awaitCtx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	if err := mgr.Conn().AwaitConnection(awaitCtx); err != nil {
		t.Fatal(err)
	}

	app := dataClient(t, srv, certs, dpOperator)
	out, err := app.UpdateThingShadow(ctx, &iotdataplane.UpdateThingShadowInput{
		ThingName: aws.String(thing),
		Payload:   []byte(`{"state":{"desired":{"target":21.5}},"clientToken":"app-1"}`),
	})
	if err != nil {
		t.Fatalf("UpdateThingShadow: %v", err)
	}
	var accepted shadowstate.UpdateAccepted
	if err := json.Unmarshal(out.Payload, &accepted); err != nil {
		t.Fatalf("update answer %s: %v", out.Payload, err)
	}
	if accepted.ClientToken != "app-1" {
		t.Errorf("update answer %s: clientToken not echoed", out.Payload)
	}

	// The HTTPS update's messages on MQTT, in order, with the answer's version. The
	// device's report follows; whatever arrives in between is the device's doing.
	seen := map[string]int64{}
	for _, kind := range []string{"update/accepted", "update/delta", "update/documents"} {
		m := watcher.next(t)
		if want := "$aws/things/" + thing + "/shadow/" + kind; m.Topic() != want {
			t.Fatalf("MQTT message on %s, want %s", m.Topic(), want)
		}
		var v struct {
			Version int64 `json:"version"`
			Current struct {
				Version int64 `json:"version"`
			} `json:"current"`
		}
		if err := json.Unmarshal(m.Payload(), &v); err != nil {
			t.Fatal(err)
		}
		seen[kind] = max(v.Version, v.Current.Version)
	}
	for kind, v := range seen {
		if v != accepted.Version {
			t.Errorf("%s carries version %d, the HTTPS answer %d", kind, v, accepted.Version)
		}
	}

	// The device reconciles; the app reads the report back, with the version the
	// device's own update got.
	var doc shadowstate.Document
	if !poll(wait, func() bool {
		got, err := app.GetThingShadow(ctx, &iotdataplane.GetThingShadowInput{ThingName: aws.String(thing)})
		if err != nil {
			t.Fatalf("GetThingShadow: %v", err)
		}
		doc = shadowstate.Document{}
		if err := json.Unmarshal(got.Payload, &doc); err != nil {
			t.Fatal(err)
		}
		return doc.State.Delta == nil && doc.State.Reported["target"] == 21.5
	}) {
		t.Fatalf("device did not report target 21.5; shadow: %+v", doc)
	}
	if doc.Version != accepted.Version+1 {
		t.Errorf("after the device's report: version %d, want %d", doc.Version, accepted.Version+1)
	}
	cached, ok := reconcilerVersion(srv, thing)
	if !ok || cached != doc.Version {
		t.Errorf("store holds version %d, the app read %d", cached, doc.Version)
	}
	drainUntil(t, watcher, "$aws/things/"+thing+"/shadow/update/documents", doc.Version)

	// A version conflict, bad JSON, an oversized state and a non-UTF-8 body: typed
	// errors, and no /update/rejected on MQTT before the accepted update that follows
	// them.
	stale := fmt.Sprintf(`{"state":{"desired":{"target":19}},"version":%d}`, accepted.Version)
	_, err = app.UpdateThingShadow(ctx, &iotdataplane.UpdateThingShadowInput{ThingName: aws.String(thing), Payload: []byte(stale)})
	var conflict *types.ConflictException
	if !errors.As(err, &conflict) {
		t.Errorf("stale version: got %v, want ConflictException", err)
	}
	wantAPIError(t, "stale version", err, 409, "ConflictException")
	_, err = app.UpdateThingShadow(ctx, &iotdataplane.UpdateThingShadowInput{ThingName: aws.String(thing), Payload: []byte(`{"state":`)})
	var invalid *types.InvalidRequestException
	if !errors.As(err, &invalid) || invalid.ErrorMessage() != shadowstate.MsgInvalidJSON {
		t.Errorf("bad JSON: got %v, want InvalidRequestException %q", err, shadowstate.MsgInvalidJSON)
	}
	wantAPIError(t, "bad JSON", err, 400, "InvalidRequestException")
	big := fmt.Sprintf(`{"state":{"desired":{"note":%q}}}`, strings.Repeat("x", shadowstate.MaxStateBytes))
	_, err = app.UpdateThingShadow(ctx, &iotdataplane.UpdateThingShadowInput{ThingName: aws.String(thing), Payload: []byte(big)})
	var tooLarge *types.RequestEntityTooLargeException
	if !errors.As(err, &tooLarge) {
		t.Errorf("oversized state: got %v, want RequestEntityTooLargeException", err)
	}
	wantAPIError(t, "oversized state", err, 413, "RequestEntityTooLargeException")
	_, err = app.UpdateThingShadow(ctx, &iotdataplane.UpdateThingShadowInput{ThingName: aws.String(thing), Payload: []byte("{\"state\":{\"desired\":{\"a\":\"\xff\"}}}")})
	wantAPIError(t, "not UTF-8", err, 415, "UnsupportedDocumentEncodingException")

	next := fmt.Sprintf(`{"state":{"desired":{"target":22}},"version":%d}`, doc.Version)
	out, err = app.UpdateThingShadow(ctx, &iotdataplane.UpdateThingShadowInput{ThingName: aws.String(thing), Payload: []byte(next)})
	if err != nil {
		t.Fatalf("update with the current version: %v", err)
	}
	if err := json.Unmarshal(out.Payload, &accepted); err != nil || accepted.Version != doc.Version+1 {
		t.Errorf("update answer %s, want version %d", out.Payload, doc.Version+1)
	}
	for range 100 {
		m := watcher.next(t)
		if strings.HasSuffix(m.Topic(), "/rejected") {
			t.Fatalf("a rejected HTTPS request was published on MQTT: %s %s", m.Topic(), m.Payload())
		}
		if m.Topic() == prefix+"update/accepted" && bytes.Equal(m.Payload(), out.Payload) {
			break
		}
	}

	// Delete: answered over HTTPS and published on MQTT; afterwards the shadow is gone.
	if !poll(wait, func() bool {
		got, err := app.GetThingShadow(ctx, &iotdataplane.GetThingShadowInput{ThingName: aws.String(thing)})
		return err == nil && bytes.Contains(got.Payload, []byte(`"reported":{"target":22}`))
	}) {
		t.Fatal("device did not report target 22")
	}
	del, err := app.DeleteThingShadow(ctx, &iotdataplane.DeleteThingShadowInput{ThingName: aws.String(thing)})
	if err != nil {
		t.Fatalf("DeleteThingShadow: %v", err)
	}
	var deleted shadowstate.DeleteAccepted
	if err := json.Unmarshal(del.Payload, &deleted); err != nil {
		t.Fatal(err)
	}
	m := drainUntil(t, watcher, "$aws/things/"+thing+"/shadow/delete/accepted", deleted.Version)
	if !bytes.Equal(m.Payload(), del.Payload) {
		t.Errorf("MQTT delete/accepted %s, HTTPS answer %s", m.Payload(), del.Payload)
	}
	_, err = app.GetThingShadow(ctx, &iotdataplane.GetThingShadowInput{ThingName: aws.String(thing)})
	var notFound *types.ResourceNotFoundException
	if !errors.As(err, &notFound) {
		t.Errorf("get after delete: got %v, want ResourceNotFoundException", err)
	}
	wantAPIError(t, "get after delete", err, 404, "ResourceNotFoundException")
	_, err = app.DeleteThingShadow(ctx, &iotdataplane.DeleteThingShadowInput{ThingName: aws.String(thing)})
	wantAPIError(t, "delete a deleted shadow", err, 404, "ResourceNotFoundException")
}

// reconcilerVersion returns the version the server's store holds for thing's classic
// shadow.
func reconcilerVersion(srv *Server, thing string) (int64, bool) {
	sh, err := srv.Shadow(shadowstate.ID{Thing: thing})
	return sh.Version, err == nil && sh.Exists
}

// drainUntil returns the first message the watcher receives on topic whose version
// (or current.version) is version, skipping others, within wait.
func drainUntil(t *testing.T, c *client, topic string, version int64) interface{ Payload() []byte } {
	t.Helper()
	deadline := time.After(wait)
	for range 1000 {
		select {
		case m := <-c.msgs:
			var v struct {
				Version int64 `json:"version"`
				Current struct {
					Version int64 `json:"version"`
				} `json:"current"`
			}
			_ = json.Unmarshal(m.Payload(), &v)
			if m.Topic() == topic && (v.Version == version || v.Current.Version == version) {
				return m
			}
		case <-deadline:
			t.Fatalf("no message on %s with version %d", topic, version)
		}
	}
	t.Fatalf("no message on %s with version %d among 1000", topic, version)
	return nil
}

// TestDataPlaneNamedShadows: named shadows over HTTPS, listed a page at a time.
func TestDataPlaneNamedShadows(t *testing.T) {
	srv, certs := startDataPlane(t, Options{})
	ctx := t.Context()
	app := dataClient(t, srv, certs, dpOperator)
	names := []string{"alpha", "beta", "delta", "epsilon", "gamma"}
	for _, n := range names {
		_, err := app.UpdateThingShadow(ctx, &iotdataplane.UpdateThingShadowInput{
			ThingName: aws.String("hub"), ShadowName: aws.String(n),
			Payload: []byte(`{"state":{"reported":{"on":true}}}`),
		})
		if err != nil {
			t.Fatalf("update %s: %v", n, err)
		}
	}
	// The classic shadow and another thing's named shadow are not listed.
	for _, in := range []*iotdataplane.UpdateThingShadowInput{
		{ThingName: aws.String("hub"), Payload: []byte(`{"state":{"reported":{"on":true}}}`)},
		{ThingName: aws.String("other"), ShadowName: aws.String("zeta"), Payload: []byte(`{"state":{"reported":{"on":true}}}`)},
	} {
		if _, err := app.UpdateThingShadow(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	got, err := app.GetThingShadow(ctx, &iotdataplane.GetThingShadowInput{ThingName: aws.String("hub"), ShadowName: aws.String("beta")})
	if err != nil || !bytes.Contains(got.Payload, []byte(`"reported":{"on":true}`)) {
		t.Fatalf("get named shadow: %v %s", err, got.Payload)
	}
	if _, err := app.DeleteThingShadow(ctx, &iotdataplane.DeleteThingShadowInput{ThingName: aws.String("hub"), ShadowName: aws.String("delta")}); err != nil {
		t.Fatal(err)
	}

	list := func(pageSize int32) [][]string {
		var pages [][]string
		var token *string
		for range 10 {
			out, err := app.ListNamedShadowsForThing(ctx, &iotdataplane.ListNamedShadowsForThingInput{ThingName: aws.String("hub"), PageSize: aws.Int32(pageSize), NextToken: token})
			if err != nil {
				t.Fatalf("ListNamedShadowsForThing: %v", err)
			}
			if out.Timestamp == 0 {
				t.Error("list answer without timestamp")
			}
			pages = append(pages, out.Results)
			if token = out.NextToken; token == nil {
				return pages
			}
		}
		t.Fatal("more than 10 pages")
		return nil
	}
	if got, want := fmt.Sprint(list(2)), "[[alpha beta] [epsilon gamma]]"; got != want {
		t.Errorf("pages of 2: %s, want %s", got, want)
	}
	if got, want := fmt.Sprint(list(100)), "[[alpha beta epsilon gamma]]"; got != want {
		t.Errorf("one page: %s, want %s", got, want)
	}
	out, err := app.ListNamedShadowsForThing(ctx, &iotdataplane.ListNamedShadowsForThingInput{ThingName: aws.String("nobody")})
	if err != nil || len(out.Results) != 0 || out.NextToken != nil {
		t.Errorf("thing without shadows: %v %+v", err, out)
	}
	_, err = app.ListNamedShadowsForThing(ctx, &iotdataplane.ListNamedShadowsForThingInput{ThingName: aws.String("hub"), PageSize: aws.Int32(101)})
	wantAPIError(t, "pageSize 101", err, 400, "InvalidRequestException")
	_, err = app.ListNamedShadowsForThing(ctx, &iotdataplane.ListNamedShadowsForThingInput{ThingName: aws.String("hub"), NextToken: aws.String("!!")})
	wantAPIError(t, "bad nextToken", err, 400, "InvalidRequestException")
	_, err = app.GetThingShadow(ctx, &iotdataplane.GetThingShadowInput{ThingName: aws.String("hub"), ShadowName: aws.String("delta")})
	wantAPIError(t, "deleted named shadow", err, 404, "ResourceNotFoundException")
	_, err = app.GetThingShadow(ctx, &iotdataplane.GetThingShadowInput{ThingName: aws.String("hub"), ShadowName: aws.String("bad/name")})
	if err == nil {
		t.Error("shadow name with a slash accepted")
	}
}

// TestDataPlanePublish: Publish reaches MQTT subscribers with its QoS and retain flag;
// bad parameters and oversized payloads are refused with AWS's error types.
func TestDataPlanePublish(t *testing.T) {
	srv, certs := startDataPlane(t, Options{})
	ctx := t.Context()
	app := dataClient(t, srv, certs, dpOperator)
	sub := mustConnect(t, srv.Endpoints().Plain, "subscriber")
	sub.mustSubscribe(t, "app/#")

	_, err := app.Publish(ctx, &iotdataplane.PublishInput{Topic: aws.String("app/thermostat-1/cmd"), Qos: 1, Payload: []byte(`{"beep":true}`)})
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	m := sub.next(t)
	if m.Topic() != "app/thermostat-1/cmd" || string(m.Payload()) != `{"beep":true}` || m.Qos() != 1 {
		t.Errorf("received %s %s qos %d", m.Topic(), m.Payload(), m.Qos())
	}
	_, err = app.Publish(ctx, &iotdataplane.PublishInput{Topic: aws.String("app/status"), Retain: true, Payload: []byte("online")})
	if err != nil {
		t.Fatalf("Publish retained: %v", err)
	}
	sub.expect(t, "app/status", "online")
	late := mustConnect(t, srv.Endpoints().Plain, "late")
	late.mustSubscribe(t, "app/status")
	if m := late.next(t); string(m.Payload()) != "online" || !m.Retained() {
		t.Errorf("late subscriber got %s retained %v, want the retained message", m.Payload(), m.Retained())
	}

	_, err = app.Publish(ctx, &iotdataplane.PublishInput{Topic: aws.String("app/big"), Payload: make([]byte, 128*1024+1)})
	wantAPIError(t, "oversized payload", err, 413, "RequestEntityTooLargeException")
	_, err = app.Publish(ctx, &iotdataplane.PublishInput{Topic: aws.String("app/x"), Qos: 2})
	wantAPIError(t, "qos 2", err, 400, "InvalidRequestException")
	_, err = app.Publish(ctx, &iotdataplane.PublishInput{Topic: aws.String("app/+")})
	wantAPIError(t, "wildcard topic", err, 400, "InvalidRequestException")
	_, err = app.Publish(ctx, &iotdataplane.PublishInput{Topic: aws.String("$aws/things/x/shadow/update/accepted")})
	wantAPIError(t, "shadow response topic", err, 401, "UnauthorizedException")
	// A shadow request published over HTTPS reaches the shadow service.
	_, err = app.Publish(ctx, &iotdataplane.PublishInput{Topic: aws.String("$aws/things/pub-1/shadow/update"), Qos: 1, Payload: []byte(`{"state":{"reported":{"x":1}}}`)})
	if err != nil {
		t.Fatalf("Publish a shadow update: %v", err)
	}
	if !poll(wait, func() bool { sh, err := srv.Shadow(shadowstate.ID{Thing: "pub-1"}); return err == nil && sh.Exists }) {
		t.Error("shadow update published over HTTPS not applied")
	}
	if _, err := app.Publish(ctx, &iotdataplane.PublishInput{Topic: aws.String("app/last")}); err != nil {
		t.Fatal(err)
	}
	sub.expect(t, "app/last", "") // nothing refused was delivered before it
}

// TestDataPlaneAuth: a wrong secret, an unknown key or no signature is refused with
// 403 ForbiddenException; both service names are accepted; a thing's key reaches its
// own shadows and topics only (401 UnauthorizedException otherwise).
func TestDataPlaneAuth(t *testing.T) {
	srv, certs := startDataPlane(t, Options{ThingTopics: []string{"sensors/${thing}"}})
	ctx := t.Context()
	get := &iotdataplane.GetThingShadowInput{ThingName: aws.String("sensor-1")}

	wrong := dpOperator
	wrong.SecretAccessKey = "not-the-secret"
	_, err := dataClient(t, srv, certs, wrong).GetThingShadow(ctx, get)
	wantAPIError(t, "wrong secret", err, 403, "ForbiddenException")
	_, err = dataClient(t, srv, certs, wrong).Publish(ctx, &iotdataplane.PublishInput{Topic: aws.String("a"), Payload: []byte("x")})
	wantAPIError(t, "wrong secret on publish", err, 403, "ForbiddenException")
	unknown := Credential{AccessKeyID: "AKIDUNKNOWN", SecretAccessKey: "x"}
	_, err = dataClient(t, srv, certs, unknown).UpdateThingShadow(ctx, &iotdataplane.UpdateThingShadowInput{ThingName: aws.String("sensor-1"), Payload: []byte(`{"state":{}}`)})
	wantAPIError(t, "unknown key", err, 403, "ForbiddenException")

	// The SDK signs as iotdata; AWS's documentation names iotdevicegateway.
	op := dataClient(t, srv, certs, dpOperator, iotdataplane.WithSigV4SigningName("iotdevicegateway"))
	_, err = op.GetThingShadow(ctx, get)
	wantAPIError(t, "signed as iotdevicegateway", err, 404, "ResourceNotFoundException")
	other := dataClient(t, srv, certs, dpOperator, iotdataplane.WithSigV4SigningName("s3"))
	_, err = other.GetThingShadow(ctx, get)
	wantAPIError(t, "signed as s3", err, 403, "ForbiddenException")

	sensor := dataClient(t, srv, certs, dpThing)
	if _, err := sensor.UpdateThingShadow(ctx, &iotdataplane.UpdateThingShadowInput{ThingName: aws.String("sensor-1"), Payload: []byte(`{"state":{"reported":{"t":1}}}`)}); err != nil {
		t.Errorf("thing updates its own shadow: %v", err)
	}
	_, err = sensor.UpdateThingShadow(ctx, &iotdataplane.UpdateThingShadowInput{ThingName: aws.String("sensor-2"), Payload: []byte(`{"state":{"reported":{"t":1}}}`)})
	var unauthorized *types.UnauthorizedException
	if !errors.As(err, &unauthorized) {
		t.Errorf("thing updates another's shadow: got %v, want UnauthorizedException", err)
	}
	_, err = sensor.ListNamedShadowsForThing(ctx, &iotdataplane.ListNamedShadowsForThingInput{ThingName: aws.String("sensor-2")})
	wantAPIError(t, "thing lists another's shadows", err, 401, "UnauthorizedException")
	if _, err := sensor.Publish(ctx, &iotdataplane.PublishInput{Topic: aws.String("sensors/sensor-1"), Payload: []byte("1")}); err != nil {
		t.Errorf("thing publishes to its topic: %v", err)
	}
	_, err = sensor.Publish(ctx, &iotdataplane.PublishInput{Topic: aws.String("sensors/sensor-2"), Payload: []byte("1")})
	wantAPIError(t, "thing publishes to another's topic", err, 401, "UnauthorizedException")
}

// TestDataPlaneRawHTTP: what the SDK never sends: no signature, a wrong method, a
// tampered body, an unknown path.
func TestDataPlaneRawHTTP(t *testing.T) {
	srv, certs := startDataPlane(t, Options{})
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: certs.Pool}}
	t.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr, Timeout: wait}
	base := srv.Endpoints().HTTPS

	do := func(method, path, body string, sign bool, tamper string) *http.Response {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if sign {
			sum := sha256.Sum256([]byte(body))
			creds := aws.Credentials{AccessKeyID: dpOperator.AccessKeyID, SecretAccessKey: dpOperator.SecretAccessKey}
			if err := v4.NewSigner().SignHTTP(t.Context(), creds, req, hex.EncodeToString(sum[:]), "iotdata", "eu-west-1", time.Now()); err != nil {
				t.Fatal(err)
			}
		}
		if tamper != "" {
			req.Body = http.NoBody
			req.Body = readCloser{strings.NewReader(tamper)}
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	check := func(what string, resp *http.Response, status int, errType string) {
		t.Helper()
		if resp.StatusCode != status || resp.Header.Get("X-Amzn-ErrorType") != errType {
			t.Errorf("%s: %d %q, want %d %q", what, resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType"), status, errType)
		}
		var body struct{ Message string }
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Message == "" {
			t.Errorf("%s: error body without message (%v)", what, err)
		}
		if resp.Header.Get("X-Amzn-RequestId") == "" {
			t.Errorf("%s: no request ID", what)
		}
	}
	check("unsigned", do(http.MethodGet, "/things/t/shadow", "", false, ""), 403, "ForbiddenException")
	check("PUT", do(http.MethodPut, "/things/t/shadow", "{}", true, ""), 405, "MethodNotAllowedException")
	check("GET /topics", do(http.MethodGet, "/topics/a", "", true, ""), 405, "MethodNotAllowedException")
	check("unknown path", do(http.MethodGet, "/nothing", "", true, ""), 404, "ResourceNotFoundException")
	check("invalid thing name", do(http.MethodGet, "/things/a%20b/shadow", "", true, ""), 400, "InvalidRequestException")
	check("empty shadow name", do(http.MethodGet, "/things/t/shadow?name=", "", true, ""), 400, "InvalidRequestException")
	check("tampered body", do(http.MethodPost, "/things/t/shadow", `{"state":{"desired":{"a":1}}}`, true, `{"state":{"desired":{"a":2}}}`), 403, "ForbiddenException")
	// Unescaped slashes in a topic name the same topic as %2F.
	sub := mustConnect(t, srv.Endpoints().Plain, "sub")
	sub.mustSubscribe(t, "a/b")
	if resp := do(http.MethodPost, "/topics/a/b?qos=1", "hi", true, ""); resp.StatusCode != 200 {
		t.Fatalf("publish with unescaped slashes: %d", resp.StatusCode)
	}
	sub.expect(t, "a/b", "hi")
}

type readCloser struct{ *strings.Reader }

func (readCloser) Close() error { return nil }

// TestDataPlaneOptions: HTTPS options New refuses.
func TestDataPlaneOptions(t *testing.T) {
	certs, err := EnsureCerts("")
	if err != nil {
		t.Fatal(err)
	}
	for name, h := range map[string]*HTTPSListener{
		"no certificate": {Credentials: []Credential{dpOperator}},
		"no credentials": {Certificate: certs.Server},
		"duplicate key":  {Certificate: certs.Server, Credentials: []Credential{dpOperator, dpOperator}},
		"no secret":      {Certificate: certs.Server, Credentials: []Credential{{AccessKeyID: "A"}}},
		"bad thing name": {Certificate: certs.Server, Credentials: []Credential{{AccessKeyID: "A", SecretAccessKey: "s", Thing: "a b"}}},
		"negative skew":  {Certificate: certs.Server, Credentials: []Credential{dpOperator}, MaxSkew: -1},
	} {
		if _, err := New(Options{HTTPS: h}); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("%s: New = %v, want ErrInvalidOptions", name, err)
		}
	}
	// HTTPS alone serves no plain listener.
	srv := startServer(t, Options{HTTPS: &HTTPSListener{Certificate: certs.Server, Credentials: []Credential{dpOperator}}})
	if eps := srv.Endpoints(); eps.Plain != "" || !strings.HasPrefix(eps.HTTPS, "https://127.0.0.1:") {
		t.Errorf("endpoints %+v, want HTTPS on loopback only", eps)
	}
}
