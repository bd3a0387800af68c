package localiot

import (
	"encoding/json"
	"hash/maphash"
	"log/slog"
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
}

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
	if !ok || kind != shadowstate.Request {
		return false
	}
	lock := &s.locks[maphash.String(s.seed, id.Prefix())%uint64(len(s.locks))]
	lock.Lock()
	defer lock.Unlock()

	send := func(kind string, msg any) {
		data, err := json.Marshal(msg)
		if err != nil { // cannot happen for the message types of shadowstate
			s.log.Error("shadow reply does not encode", "shadow", id, "kind", kind, "error", err)
			return
		}
		publish(id.Topic(op, kind), data)
	}
	fail := func(err error, token string) {
		s.log.Error("shadow store failed", "shadow", id, "op", op, "error", err)
		send(shadowstate.Rejected, &shadowstate.Error{Code: 500, Message: "Internal service failure", ClientToken: token, Timestamp: s.now().Unix()})
	}

	cur, err := s.store.Load(id)
	if err != nil {
		fail(err, requestToken(payload))
		return true
	}
	out := shadowstate.Apply(cur, op, payload, s.now())
	s.log.Debug("shadow request", "shadow", id, "op", op, "rejected", out.Rejected != nil, "payload_bytes", len(payload))
	if out.Rejected != nil {
		s.log.Debug("shadow request rejected", "shadow", id, "op", op, "code", out.Rejected.Code, "message", out.Rejected.Message)
		send(shadowstate.Rejected, out.Rejected)
		return true
	}
	if op != shadowstate.OpGet {
		if err := s.store.Save(out.Shadow); err != nil {
			fail(err, clientToken(out.Accepted))
			return true
		}
	}
	send(shadowstate.Accepted, out.Accepted)
	if out.Delta != nil {
		send(shadowstate.DeltaKind, out.Delta)
	}
	if out.Documents != nil {
		send(shadowstate.Documents, out.Documents)
	}
	return true
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
