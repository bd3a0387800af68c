package localiot

import (
	"encoding/json"
	"errors"
	"hash/maphash"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/shadowsync/shadowsync/shadowstate"
)

// shadowService is the Device Shadow service: it answers the get, update and delete
// requests clients publish on the reserved shadow topics, following the rules in
// package shadowstate, keeps every shadow in a Store, and publishes the replies AWS IoT
// would publish. It knows nothing about the broker it runs on; an attachment feeds it
// requests and carries its replies (see shadow_attach.go). It is safe for concurrent
// use; requests for one shadow are handled one at a time, in arrival order.
type shadowService struct {
	store Store
	now   func() time.Time
	log   *slog.Logger
	seed  maphash.Seed
	locks [64]sync.Mutex
	// history records recent documents messages and their writers for the console;
	// nil (no console) records nothing.
	history *shadowHistory

	warnMu     sync.Mutex
	lastWarn   time.Time // when warnDropped last logged
	suppressed int       // requests warnDropped counted without a log line since then
}

// invalidNameWarnEvery is the least time between two warnings about requests dropped
// for an invalid name with no room for a reply topic.
const invalidNameWarnEvery = 10 * time.Second

// The messages of the 400 rejection of a request whose topic names an invalid thing or
// shadow. AWS IoT documents no message for this case.
const (
	msgInvalidThingName  = "Invalid thing name"
	msgInvalidShadowName = "Invalid shadow name"
)

func newShadowService(store Store, now func() time.Time, log *slog.Logger) *shadowService {
	if now == nil {
		now = time.Now
	}
	return &shadowService{store: store, now: now, log: log, seed: maphash.MakeSeed()}
}

// shadowRequestFilters are the subscriptions that bring every shadow request, classic
// and named, to the service, and nothing else: replies are one level deeper.
var shadowRequestFilters = []string{
	"$aws/things/+/shadow/+",
	"$aws/things/+/shadow/name/+/+",
}

// handle answers one message published on topic. It returns false, publishing
// nothing, when topic is not a shadow request topic. publish is called with each
// reply, in order (accepted or rejected first, then delta and documents), while the
// shadow is locked, so replies about one shadow leave in version order.
func (s *shadowService) handle(topic string, payload []byte, publish func(topic string, payload []byte)) bool {
	id, op, kind, ok := shadowstate.ParseTopic(topic)
	if !ok {
		return s.rejectInvalidName(topic, payload, publish)
	}
	if kind != shadowstate.Request {
		return false
	}
	s.apply(id, op, payload, func(kind shadowstate.Kind, msg any) {
		data, err := json.Marshal(msg)
		if err != nil { // cannot happen for the message types of shadowstate
			s.log.Error("shadow reply does not encode", "shadow", id, "kind", kind, "error", err)
			return
		}
		publish(id.Topic(op, kind), data)
	})
	return true
}

// apply performs one request on shadow id, whichever way it arrived (an MQTT request
// topic or the HTTPS data plane), and hands each resulting message to emit in order:
// accepted or rejected first (kind shadowstate.Accepted or Rejected), then delta and
// documents. emit is called while the shadow is locked, so messages about one shadow
// leave in version order, and an update is saved before its accepted message.
func (s *shadowService) apply(id shadowstate.ID, op shadowstate.Op, payload []byte, emit func(kind shadowstate.Kind, msg any)) {
	lock := &s.locks[maphash.String(s.seed, id.Prefix())%uint64(len(s.locks))]
	lock.Lock()
	defer lock.Unlock()

	fail := func(err error, token string) {
		s.log.Error("shadow store failed", "shadow", id, "op", op, "error", err)
		emit(shadowstate.Rejected, &shadowstate.Error{Code: 500, Message: "Internal service failure", ClientToken: token, Timestamp: s.now().Unix()})
	}

	cur, err := s.store.Load(id)
	if err != nil {
		fail(err, requestToken(payload))
		return
	}
	out := shadowstate.Apply(cur, op, payload, s.now())
	s.log.Debug("shadow request", "shadow", id, "op", op, "rejected", out.Rejected != nil, "payload_bytes", len(payload))
	if out.Rejected != nil {
		s.log.Debug("shadow request rejected", "shadow", id, "op", op, "code", out.Rejected.Code, "message", out.Rejected.Message)
		emit(shadowstate.Rejected, out.Rejected)
		return
	}
	if op != shadowstate.OpGet {
		if err := s.store.Save(out.Shadow); err != nil {
			fail(err, clientToken(out.Accepted))
			return
		}
	}
	emit(shadowstate.Accepted, out.Accepted)
	if out.Delta != nil {
		emit(shadowstate.DeltaKind, out.Delta)
	}
	if out.Documents != nil {
		emit(shadowstate.Documents, out.Documents)
	}
}

// rejectInvalidName answers a request whose topic is shaped like a shadow request but
// names a thing or shadow that breaks AWS's naming rules (a thing name is 1 to 128
// bytes of a-z, A-Z, 0-9, ':', '_' and '-'; a shadow name 1 to 64 of those or '$'):
// with a 400 error on the request topic plus "/rejected", where AWS's Device Shadow
// service publishes its errors, echoing the clientToken. When that reply topic would
// break AWS's topic limits (256 bytes, 7 slashes) the request is dropped and a
// warning logged, at most one per invalidNameWarnEvery. It returns false, doing
// nothing, when topic is not shaped like a shadow request or its names are valid.
func (s *shadowService) rejectInvalidName(topic string, payload []byte, publish func(topic string, payload []byte)) bool {
	id, op, named, ok := parseRequestTopic(topic)
	if !ok {
		return false
	}
	var msg string
	var why error
	switch {
	case shadowstate.ID{Thing: id.Thing}.Validate() != nil:
		msg, why = msgInvalidThingName, shadowstate.ID{Thing: id.Thing}.Validate()
	case named && id.Name == "":
		msg, why = msgInvalidShadowName, errors.New("empty shadow name")
	case id.Validate() != nil:
		msg, why = msgInvalidShadowName, id.Validate()
	default:
		return false
	}
	reply := topic + "/" + string(shadowstate.Rejected)
	if !topicWithinLimits(reply) {
		s.warnDropped(topic, op, why)
		return true
	}
	s.log.Debug("shadow request rejected: invalid name", "topic", topic, "op", op, "reason", why)
	data, _ := json.Marshal(&shadowstate.Error{Code: 400, Message: msg, ClientToken: requestToken(payload), Timestamp: s.now().Unix()})
	publish(reply, data)
	return true
}

// warnDropped logs a request dropped for an invalid name, unless another was logged
// less than invalidNameWarnEvery ago; it then counts it in the next warning.
func (s *shadowService) warnDropped(topic string, op shadowstate.Op, why error) {
	s.warnMu.Lock()
	now := s.now()
	if !s.lastWarn.IsZero() && now.Sub(s.lastWarn) < invalidNameWarnEvery {
		s.suppressed++
		s.warnMu.Unlock()
		return
	}
	suppressed := s.suppressed
	s.lastWarn, s.suppressed = now, 0
	s.warnMu.Unlock()
	s.log.Warn("shadow request dropped: invalid thing or shadow name, and no reply topic fits AWS's topic limits",
		"topic", topic, "op", op, "reason", why, "dropped_unlogged", suppressed)
}

// parseRequestTopic splits a topic shaped like a shadow request,
// $aws/things/{thing}/shadow/{op} or $aws/things/{thing}/shadow/name/{name}/{op} with op
// get, update or delete, without checking the names; named reports the second form.
func parseRequestTopic(topic string) (id shadowstate.ID, op shadowstate.Op, named, ok bool) {
	rest, found := strings.CutPrefix(topic, "$aws/things/")
	if !found {
		return id, "", false, false
	}
	levels := strings.Split(rest, "/")
	switch {
	case len(levels) == 3 && levels[1] == "shadow":
		id.Thing, op = levels[0], shadowstate.Op(levels[2])
	case len(levels) == 5 && levels[1] == "shadow" && levels[2] == "name":
		id.Thing, id.Name, op, named = levels[0], levels[3], shadowstate.Op(levels[4]), true
	default:
		return id, "", false, false
	}
	ok = op == shadowstate.OpGet || op == shadowstate.OpUpdate || op == shadowstate.OpDelete
	return id, op, named, ok
}

// throttle answers a request the service had no room to queue with AWS's 429
// rejection, echoing token when there is one.
func (s *shadowService) throttle(topic, token string, publish func(topic string, payload []byte)) {
	id, op, kind, ok := shadowstate.ParseTopic(topic)
	if !ok || kind != shadowstate.Request {
		return
	}
	data, _ := json.Marshal(&shadowstate.Error{Code: shadowstate.CodeThrottled, Message: shadowstate.MsgThrottled, ClientToken: token, Timestamp: s.now().Unix()})
	publish(id.Topic(op, shadowstate.Rejected), data)
}

// requestToken returns the clientToken of a request payload when it has a valid one,
// for the replies made without decoding the request properly (a store failure, a
// throttled request); "" otherwise.
func requestToken(payload []byte) string {
	var r struct {
		ClientToken any `json:"clientToken"`
	}
	if json.Unmarshal(payload, &r) != nil {
		return ""
	}
	if t, ok := r.ClientToken.(string); ok && len(t) <= shadowstate.MaxClientTokenBytes {
		return t
	}
	return ""
}

// clientToken returns the clientToken an accepted message echoes.
func clientToken(accepted any) string {
	switch m := accepted.(type) {
	case *shadowstate.UpdateAccepted:
		return m.ClientToken
	case *shadowstate.DeleteAccepted:
		return m.ClientToken
	case *shadowstate.Document:
		return m.ClientToken
	}
	return ""
}
