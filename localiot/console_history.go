package localiot

import (
	"sync"
	"time"

	"github.com/shadowsync/shadowsync/shadowstate"
)

// shadowHistory keeps, for every shadow, the last few /update/documents messages the
// shadow service published, each with who requested the update, so that the console
// can show how a shadow got where it is. The service fills it only when the console
// is on (shadowService.history is nil otherwise), so a server without a console keeps
// nothing. It is safe for concurrent use.
type shadowHistory struct {
	size int
	// changed is called after each accepted update or delete of a shadow, while the
	// shadow is locked: it must return quickly and must not use the shadow service.
	changed func(id shadowstate.ID)

	mu   sync.Mutex
	byID map[shadowstate.ID][]historyEntry // oldest first, at most size each
}

// historyEntry is one /update/documents message and who caused it.
type historyEntry struct {
	At time.Time
	// Writer is who requested the update: the MQTT client ID of the requester,
	// "console", or the HTTPS data plane's principal.
	Writer string
	// Documents is the message as published.
	Documents []byte
}

func newShadowHistory(size int, changed func(id shadowstate.ID)) *shadowHistory {
	return &shadowHistory{size: size, changed: changed, byID: make(map[shadowstate.ID][]historyEntry)}
}

// observe looks at one message the shadow service publishes on behalf of writer:
// a documents message is recorded, and an accepted update or delete is reported to
// changed. It does nothing on a nil h.
func (h *shadowHistory) observe(writer, topic string, payload []byte) {
	if h == nil {
		return
	}
	id, op, kind, ok := shadowstate.ParseTopic(topic)
	if !ok {
		return
	}
	switch {
	case kind == shadowstate.Documents:
		h.mu.Lock()
		entries := append(h.byID[id], historyEntry{At: time.Now(), Writer: writer, Documents: payload})
		if len(entries) > h.size {
			entries = append(entries[:0:0], entries[len(entries)-h.size:]...)
		}
		h.byID[id] = entries
		h.mu.Unlock()
		h.changed(id)
	case kind == shadowstate.Accepted && op == shadowstate.OpDelete:
		h.changed(id)
	}
}

// entries returns the recorded messages of id, newest first.
func (h *shadowHistory) entries(id shadowstate.ID) []historyEntry {
	h.mu.Lock()
	defer h.mu.Unlock()
	src := h.byID[id]
	out := make([]historyEntry, len(src))
	for i, e := range src {
		out[len(src)-1-i] = e
	}
	return out
}

// recorder returns publish wrapped so that every message also goes to the history
// as written by writer; without a history it returns publish itself.
func (s *shadowService) recorder(writer string, publish func(topic string, payload []byte)) func(topic string, payload []byte) {
	if s.history == nil {
		return publish
	}
	return func(topic string, payload []byte) {
		s.history.observe(writer, topic, payload)
		publish(topic, payload)
	}
}
