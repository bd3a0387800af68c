package localiot

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/shadowsync/shadowsync/internal/sigv4"
	"github.com/shadowsync/shadowsync/shadowstate"
)

// HTTPSListener configures AWS IoT's HTTPS data plane, so that cloud-side apps written
// with an AWS SDK's IoT data plane client (iotdataplane in aws-sdk-go-v2, IotDataPlane
// in boto3) run against localiot unchanged: GetThingShadow, UpdateThingShadow and
// DeleteThingShadow (classic and named shadows), ListNamedShadowsForThing, and Publish.
// Every request must be signed with SigV4 in its Authorization header (service
// iotdevicegateway, or iotdata, the name the SDKs sign with) by one of Credentials.
//
// The shadow operations go through the same Device Shadow service and store as MQTT
// requests: an update made over HTTPS publishes /update/accepted, /update/delta and
// /update/documents to MQTT subscribers, and a delete /delete/accepted, with the same
// versions, as AWS IoT does; a rejected request is answered in the HTTP response only
// and publishes nothing, as AWS documents. Publish hands the payload to the broker, as
// if an operator (or the credential's thing) had published it.
//
// ListNamedShadowsForThing needs a Store that can list its shadows (MemoryStore and
// BoltStore can, through an IDs method); with any other Store it answers 500.
//
// The same listener serves the Jobs operations of AWS IoT's control plane (CreateJob,
// CancelJob, DeleteJob, DescribeJob, GetJobDocument, ListJobs, CancelJobExecution,
// DescribeJobExecution, ListJobExecutionsForJob, ListJobExecutionsForThing) to
// requests signed for service iot, as aws-sdk-go-v2's iot client and boto3's "iot"
// client sign them, so that tools that manage jobs run against localiot unchanged. Their
// paths (/jobs/..., /things/{thing}/jobs/...) do not collide with the data plane's
// (/things/{thing}/shadow, /topics/..., /api/things/shadow/...); a request signed for
// the other plane's service is refused. Only credentials without Thing (operators) may
// use the control plane.
type HTTPSListener struct {
	// Addr is the host:port to listen on. "" means 127.0.0.1:0.
	Addr string
	// Certificate is the server's certificate and key (CertSet.Server). Required.
	Certificate tls.Certificate
	// Credentials are the access keys whose signatures are accepted. A credential with
	// Thing set may use only that thing's shadows and publish only where the thing may
	// (its shadow request topics and Options.ThingTopics); one without has operator
	// rights. At least one is required.
	Credentials []Credential
	// Region, if set, is the only region accepted in a signature's scope. "" accepts any.
	Region string
	// MaxSkew is how far X-Amz-Date may be from the server's clock. Zero means 5
	// minutes, AWS's window.
	MaxSkew time.Duration
	// AccountID is the AWS account, 12 digits, in the ARNs the control plane answers
	// with (jobArn, thingArn). "" means 123456789012, the account of AWS's examples.
	AccountID string
}

// validate checks h; a nil h is valid (no data plane).
func (h *HTTPSListener) validate() error {
	if h == nil {
		return nil
	}
	if len(h.Certificate.Certificate) == 0 || h.Certificate.PrivateKey == nil {
		return fmt.Errorf("%w: HTTPS.Certificate is required", ErrInvalidOptions)
	}
	if len(h.Credentials) == 0 {
		return fmt.Errorf("%w: HTTPS.Credentials is empty", ErrInvalidOptions)
	}
	if h.MaxSkew < 0 {
		return fmt.Errorf("%w: HTTPS.MaxSkew is negative", ErrInvalidOptions)
	}
	if h.AccountID != "" && !validAccountID(h.AccountID) {
		return fmt.Errorf("%w: HTTPS.AccountID %q is not 12 digits", ErrInvalidOptions, h.AccountID)
	}
	seen := make(map[string]bool, len(h.Credentials))
	for i, c := range h.Credentials {
		if c.AccessKeyID == "" || c.SecretAccessKey == "" {
			return fmt.Errorf("%w: HTTPS.Credentials[%d] needs an access key ID and a secret", ErrInvalidOptions, i)
		}
		if seen[c.AccessKeyID] {
			return fmt.Errorf("%w: HTTPS.Credentials[%d]: access key ID %s given twice", ErrInvalidOptions, i, c.AccessKeyID)
		}
		seen[c.AccessKeyID] = true
		if c.Thing != "" {
			if err := (shadowstate.ID{Thing: c.Thing}).Validate(); err != nil {
				return fmt.Errorf("%w: HTTPS.Credentials[%d]: %w", ErrInvalidOptions, i, err)
			}
		}
	}
	return nil
}

// Data plane settings.
const (
	// defaultListPageSize is ListNamedShadowsForThing's page size when the request
	// gives none; AWS documents no default, so this is its documented maximum.
	defaultListPageSize = 100
	maxListPageSize     = 100
	// maxHTTPBody bounds what is read of a request body when Limits.MaxPayload is
	// off; a larger body is refused with 413.
	maxHTTPBody = 16 << 20
	// dataPlaneShutdown bounds how long Start waits for HTTPS requests under way.
	dataPlaneShutdown = 5 * time.Second
	// httpReadTimeout bounds reading one request, headers and body.
	httpReadTimeout = 30 * time.Second
)

// dataPlane serves the HTTPS data plane of one Server.
type dataPlane struct {
	srv     *Server
	auth    *sigV4Verifier
	ln      net.Listener
	http    *http.Server
	account string        // the AWS account in control plane ARNs
	started bool          // serve was called
	done    chan struct{} // closed when serve's goroutine has returned
	once    sync.Once
}

func newDataPlane(s *Server, h *HTTPSListener) *dataPlane {
	auth := &sigV4Verifier{creds: make(map[string]Credential, len(h.Credentials)), region: h.Region, skew: h.MaxSkew, now: time.Now,
		services: []string{sigv4.ServiceIoTDeviceGateway, serviceIoTDataDeprecated, serviceIoTControl}}
	for _, c := range h.Credentials {
		auth.creds[c.AccessKeyID] = c
	}
	if auth.skew == 0 {
		auth.skew = defaultMaxSkew
	}
	dp := &dataPlane{srv: s, auth: auth, done: make(chan struct{}), account: cmp.Or(h.AccountID, defaultAccountID)}
	dp.http = &http.Server{
		Handler:           dp,
		TLSConfig:         &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{h.Certificate}},
		ReadHeaderTimeout: defaultUpgradeTimeout,
		ReadTimeout:       httpReadTimeout,
		ErrorLog:          slog.NewLogLogger(s.opts.Logger.With("listener", "https").Handler(), slog.LevelDebug),
	}
	return dp
}

// listen binds the listener; nothing is served until serve.
func (dp *dataPlane) listen(ctx context.Context, lc *net.ListenConfig) error {
	ln, err := lc.Listen(ctx, "tcp", addrOrDefault(dp.srv.opts.HTTPS.Addr))
	if err != nil {
		return err
	}
	dp.ln = ln
	return nil
}

func (dp *dataPlane) endpoint() string { return "https://" + dp.ln.Addr().String() }

// serve serves requests on a goroutine of its own until close. It does nothing on a
// nil dataPlane.
func (dp *dataPlane) serve() {
	if dp == nil {
		return
	}
	dp.started = true
	go func() {
		defer close(dp.done)
		if err := dp.http.ServeTLS(dp.ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			dp.srv.opts.Logger.Error("https data plane stopped", "error", err)
		}
	}()
}

// close stops accepting, waits up to dataPlaneShutdown for the requests under way, and
// closes every connection. It may be called more than once, on a nil dataPlane, and
// before serve, from the goroutine that called serve.
func (dp *dataPlane) close() {
	if dp == nil || dp.ln == nil {
		return
	}
	dp.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), dataPlaneShutdown)
		defer cancel()
		if err := dp.http.Shutdown(ctx); err != nil {
			_ = dp.http.Close()
		}
		_ = dp.ln.Close() // when serve was never called, Shutdown does not know it
		if dp.started {
			<-dp.done
		}
	})
}

// The routes of AWS IoT's data plane API.
const (
	thingsPrefix     = "/things/"
	listNamedPrefix  = "/api/things/shadow/ListNamedShadowsForThing/"
	topicsPrefix     = "/topics/"
	shadowPathSuffix = "/shadow"
)

// apiError is an error answer as AWS's REST JSON protocol has it: the status code,
// the error type (the X-Amzn-ErrorType header, from which the SDKs pick the typed
// error) and a message in the JSON body.
type apiError struct {
	status  int
	errType string
	message string
}

// The error types of the IoT data plane API, by HTTP status.
var errorTypes = map[int]string{
	http.StatusBadRequest:            "InvalidRequestException",
	http.StatusUnauthorized:          "UnauthorizedException",
	http.StatusForbidden:             "ForbiddenException",
	http.StatusNotFound:              "ResourceNotFoundException",
	http.StatusMethodNotAllowed:      "MethodNotAllowedException",
	http.StatusConflict:              "ConflictException",
	http.StatusRequestEntityTooLarge: "RequestEntityTooLargeException",
	http.StatusUnsupportedMediaType:  "UnsupportedDocumentEncodingException",
	http.StatusTooManyRequests:       "ThrottlingException",
	http.StatusInternalServerError:   "InternalFailureException",
	http.StatusServiceUnavailable:    "ServiceUnavailableException",
}

func newAPIError(status int, message string) *apiError {
	t, ok := errorTypes[status]
	if !ok {
		status, t = http.StatusInternalServerError, errorTypes[http.StatusInternalServerError]
	}
	return &apiError{status: status, errType: t, message: message}
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s: %s", e.status, e.errType, e.message) }

// ServeHTTP answers one data plane request: it reads the body, checks the signature,
// then routes by path and method.
func (dp *dataPlane) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	reqID := newRequestID()
	w.Header().Set("X-Amzn-Requestid", reqID)
	log := dp.srv.opts.Logger.With("listener", "https", "method", r.Method, "path", r.URL.EscapedPath(), "request_id", reqID)

	body, err := readBody(r, dp.bodyLimit())
	if err != nil {
		dp.fail(w, log, err)
		return
	}
	cred, scope, err := dp.auth.verifyHeader(r, body)
	if err == nil && (scope.service == serviceIoTControl) != isControlPath(r.URL.EscapedPath()) {
		// AWS serves the two planes on different hosts; a signature for one is no
		// good on the other.
		log.Info("https request refused", "reason", fmt.Sprintf("signed for service %q", scope.service))
		dp.fail(w, log, newAPIError(http.StatusForbidden, "Credential should be scoped to the service of this API: iot for /jobs and /things/{thingName}/jobs, iotdata for the data plane"))
		return
	}
	if err != nil {
		log.Info("https request refused", "reason", err)
		dp.fail(w, log, newAPIError(http.StatusForbidden, "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method."))
		return
	}
	p := principal{operator: cred.Thing == "", thing: cred.Thing}
	if scope.service == serviceIoTControl {
		err = dp.control(w, r, p, scope.region, body)
	} else {
		err = dp.route(w, r, p, body)
	}
	if err != nil {
		dp.fail(w, log, err)
	}
}

// route dispatches an authenticated request.
func (dp *dataPlane) route(w http.ResponseWriter, r *http.Request, p principal, body []byte) error {
	path := r.URL.EscapedPath()
	switch {
	case strings.HasPrefix(path, thingsPrefix) && strings.HasSuffix(path, shadowPathSuffix):
		thing, err := url.PathUnescape(strings.TrimSuffix(strings.TrimPrefix(path, thingsPrefix), shadowPathSuffix))
		if err != nil || strings.Contains(thing, "/") {
			return newAPIError(http.StatusNotFound, "Not Found")
		}
		var op shadowstate.Op
		switch r.Method {
		case http.MethodGet:
			op = shadowstate.OpGet
		case http.MethodPost:
			op = shadowstate.OpUpdate
		case http.MethodDelete:
			op = shadowstate.OpDelete
		default:
			return newAPIError(http.StatusMethodNotAllowed, "The specified combination of HTTP verb and URI is not supported")
		}
		return dp.shadow(w, r, p, thing, op, body)
	case strings.HasPrefix(path, listNamedPrefix):
		thing, err := url.PathUnescape(strings.TrimPrefix(path, listNamedPrefix))
		if err != nil || strings.Contains(thing, "/") {
			return newAPIError(http.StatusNotFound, "Not Found")
		}
		if r.Method != http.MethodGet {
			return newAPIError(http.StatusMethodNotAllowed, "The specified combination of HTTP verb and URI is not supported")
		}
		return dp.listNamed(w, r, p, thing)
	case strings.HasPrefix(path, topicsPrefix):
		// The SDKs escape the topic as one path segment ("/" as %2F); a hand-written
		// request may leave its slashes alone. Both name the same topic.
		topic, err := url.PathUnescape(strings.TrimPrefix(path, topicsPrefix))
		if err != nil {
			return newAPIError(http.StatusBadRequest, "Invalid topic")
		}
		if r.Method != http.MethodPost {
			return newAPIError(http.StatusMethodNotAllowed, "The specified combination of HTTP verb and URI is not supported")
		}
		return dp.publish(w, r, p, topic, body)
	}
	return newAPIError(http.StatusNotFound, "Not Found")
}

// shadow performs GetThingShadow, UpdateThingShadow or DeleteThingShadow through the
// shadow service. The accepted or rejected message is the HTTP answer; an accepted
// update also publishes /update/accepted, /update/delta and /update/documents, and an
// accepted delete /delete/accepted, to MQTT subscribers, as an MQTT request would.
func (dp *dataPlane) shadow(w http.ResponseWriter, r *http.Request, p principal, thing string, op shadowstate.Op, body []byte) error {
	id := shadowstate.ID{Thing: thing, Name: r.URL.Query().Get("name")}
	if _, named := r.URL.Query()["name"]; named && id.Name == "" {
		return newAPIError(http.StatusBadRequest, msgInvalidShadowName)
	}
	if err := (shadowstate.ID{Thing: id.Thing}).Validate(); err != nil {
		return newAPIError(http.StatusBadRequest, msgInvalidThingName)
	}
	if err := id.Validate(); err != nil {
		return newAPIError(http.StatusBadRequest, msgInvalidShadowName)
	}
	if !p.operator && p.thing != id.Thing {
		return newAPIError(http.StatusUnauthorized, "You are not authorized to perform this operation")
	}
	var (
		answer   []byte
		rejected *shadowstate.Error
	)
	dp.srv.shadow.apply(id, op, body, func(kind shadowstate.Kind, msg any) {
		data, err := json.Marshal(msg)
		if err != nil { // cannot happen for the message types of shadowstate
			dp.srv.opts.Logger.Error("shadow reply does not encode", "shadow", id, "kind", kind, "error", err)
			rejected = &shadowstate.Error{Code: http.StatusInternalServerError, Message: "Internal service failure"}
			return
		}
		switch kind {
		case shadowstate.Rejected:
			rejected = msg.(*shadowstate.Error)
			return
		case shadowstate.Accepted:
			answer = data
			if op == shadowstate.OpGet {
				return // a get's answer goes to the requester only
			}
		}
		dp.srv.shadow.history.observe("HTTPS data plane ("+p.String()+")", id.Topic(op, kind), data)
		if err := dp.srv.broker.Publish(id.Topic(op, kind), data, false, 1); err != nil {
			dp.srv.opts.Logger.Error("shadow message not published", "shadow", id, "kind", kind, "error", err)
		}
	})
	if rejected != nil {
		return newAPIError(rejected.Code, rejected.Message)
	}
	writeJSON(w, answer)
	return nil
}

// listNamed answers ListNamedShadowsForThing: the names of thing's named shadows that
// exist, sorted, pageSize (1 to 100) at a time; nextToken is opaque to the client and
// names the last shadow of the previous page.
func (dp *dataPlane) listNamed(w http.ResponseWriter, r *http.Request, p principal, thing string) error {
	if (shadowstate.ID{Thing: thing}).Validate() != nil {
		return newAPIError(http.StatusBadRequest, msgInvalidThingName)
	}
	if !p.operator && p.thing != thing {
		return newAPIError(http.StatusUnauthorized, "You are not authorized to perform this operation")
	}
	q := r.URL.Query()
	size := defaultListPageSize
	if v := q.Get("pageSize"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxListPageSize {
			return newAPIError(http.StatusBadRequest, fmt.Sprintf("Invalid pageSize: must be between 1 and %d", maxListPageSize))
		}
		size = n
	}
	after := ""
	if tok := q.Get("nextToken"); tok != "" {
		raw, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil || len(raw) == 0 {
			return newAPIError(http.StatusBadRequest, "Invalid nextToken")
		}
		after = string(raw)
	}
	lister, ok := dp.srv.opts.Store.(interface{ IDs() []shadowstate.ID })
	if !ok {
		return newAPIError(http.StatusInternalServerError, "The shadow store cannot list shadows")
	}
	var names []string
	for _, id := range lister.IDs() {
		if id.Thing != thing || id.Name == "" || id.Name <= after && after != "" {
			continue
		}
		sh, err := dp.srv.opts.Store.Load(id)
		if err != nil {
			return newAPIError(http.StatusInternalServerError, "Internal service failure")
		}
		if sh.Exists {
			names = append(names, id.Name)
		}
	}
	slices.Sort(names)
	out := struct {
		Results   []string `json:"results"`
		NextToken string   `json:"nextToken,omitempty"`
		Timestamp int64    `json:"timestamp"`
	}{Results: names, Timestamp: time.Now().Unix()}
	if len(names) > size {
		out.Results = names[:size]
		out.NextToken = base64.RawURLEncoding.EncodeToString([]byte(names[size-1]))
	}
	if out.Results == nil {
		out.Results = []string{}
	}
	data, _ := json.Marshal(out)
	writeJSON(w, data)
	return nil
}

// publish answers Publish: the body is published on topic with the query's qos (0 or
// 1) and retain flag, through the broker's inline client, so every subscriber, and
// the shadow service for a shadow request topic, gets it as from an MQTT client.
func (dp *dataPlane) publish(w http.ResponseWriter, r *http.Request, p principal, topic string, body []byte) error {
	q := r.URL.Query()
	qos := byte(0)
	switch q.Get("qos") {
	case "", "0":
	case "1":
		qos = 1
	default:
		return newAPIError(http.StatusBadRequest, "Invalid qos: must be 0 or 1")
	}
	retain := false
	if v := q.Get("retain"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return newAPIError(http.StatusBadRequest, "Invalid retain: must be true or false")
		}
		retain = b
	}
	if topic == "" || strings.ContainsAny(topic, "+#") || strings.ContainsRune(topic, 0) {
		return newAPIError(http.StatusBadRequest, "Invalid topic")
	}
	if !dp.srv.opts.Limits.Off && !topicWithinLimits(topic) {
		return newAPIError(http.StatusBadRequest, "Invalid topic: longer than 256 bytes or more than 7 slashes")
	}
	if !dp.srv.gate.policy.mayPublish(p, topic) {
		return newAPIError(http.StatusUnauthorized, "You are not authorized to perform this operation")
	}
	if err := dp.srv.broker.Publish(topic, body, retain, qos); err != nil {
		dp.srv.opts.Logger.Error("https publish failed", "topic", topic, "error", err)
		return newAPIError(http.StatusInternalServerError, "Internal service failure")
	}
	writeJSON(w, []byte("{}"))
	return nil
}

// bodyLimit is the largest request body read: the broker's payload limit, which is
// also at least the shadow service's.
func (dp *dataPlane) bodyLimit() int {
	if n := dp.srv.opts.Limits.MaxPayload; n > 0 && !dp.srv.opts.Limits.Off {
		return max(n, shadowstate.MaxPayloadBytes)
	}
	return maxHTTPBody
}

// readBody reads r's body, refusing one longer than limit with 413.
func readBody(r *http.Request, limit int) ([]byte, error) {
	if r.ContentLength > int64(limit) {
		return nil, newAPIError(http.StatusRequestEntityTooLarge, shadowstate.MsgPayloadTooLarge)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, int64(limit)+1))
	if err != nil {
		return nil, newAPIError(http.StatusBadRequest, "The request body could not be read")
	}
	if len(body) > limit {
		return nil, newAPIError(http.StatusRequestEntityTooLarge, shadowstate.MsgPayloadTooLarge)
	}
	return body, nil
}

// fail writes err as AWS's REST JSON error answer.
func (dp *dataPlane) fail(w http.ResponseWriter, log *slog.Logger, err error) {
	var e *apiError
	if !errors.As(err, &e) {
		e = newAPIError(http.StatusInternalServerError, "Internal service failure")
	}
	log.Debug("https request failed", "status", e.status, "error_type", e.errType, "message", e.message)
	body, _ := json.Marshal(struct {
		Message string `json:"message"`
	}{e.message})
	w.Header().Set("X-Amzn-Errortype", e.errType)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.status)
	_, _ = w.Write(body)
}

func writeJSON(w http.ResponseWriter, data []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(data)
}

// newRequestID returns a random request ID for the X-Amzn-RequestId header, which the
// SDKs attach to errors.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
