package shadowstate

import (
	"encoding/json"
	"time"
)

// Op is a shadow operation a client requests.
type Op string

// The three operations of the shadow protocol.
const (
	OpGet    Op = "get"
	OpUpdate Op = "update"
	OpDelete Op = "delete"
)

// Shadow is one shadow as the service stores it. The zero value (with ID set) is a
// shadow that was never created. A deleted shadow keeps its version and the time it was
// deleted, so that a new shadow of the same name continues from that version.
type Shadow struct {
	ID       ID
	Exists   bool
	Desired  Object
	Reported Object
	// MetaDesired and MetaReported mirror Desired and Reported with a Stamp per leaf.
	MetaDesired  Object
	MetaReported Object
	// Version is the version of the last accepted update, or one past the version the
	// shadow had when it was deleted (the service counts the delete as a change).
	Version int64
	// DeletedAt is when the shadow was last deleted, in Unix seconds; 0 if never.
	DeletedAt int64
}

// Outcome is what the service does with one request: the shadow afterwards and the
// messages it publishes. Exactly one of Accepted and Rejected is set. When Rejected is
// set, Shadow is the input unchanged and no other message is published.
type Outcome struct {
	Shadow Shadow
	// Accepted is a *Document (get), *UpdateAccepted (update) or *DeleteAccepted (delete).
	Accepted any
	Rejected *Error
	// Delta is set after an accepted update that leaves desired and reported different.
	Delta *DeltaMessage
	// Documents is set after every accepted update.
	Documents *DocumentsMessage
}

// Apply performs one shadow request on cur as the Device Shadow service would at time
// now: payload is what the client published on the operation's request topic. It never
// modifies cur and never panics, whatever the payload.
func Apply(cur Shadow, op Op, payload []byte, now time.Time) Outcome {
	switch op {
	case OpGet:
		return get(cur, payload, now.Unix())
	case OpUpdate:
		return update(cur, payload, now.Unix())
	case OpDelete:
		return remove(cur, payload, now.Unix())
	}
	return reject(cur, &Error{Code: 400, Message: "Unsupported operation: " + string(op), Timestamp: now.Unix()})
}

func reject(cur Shadow, e *Error) Outcome {
	return Outcome{Shadow: cur, Rejected: e}
}

func get(cur Shadow, payload []byte, ts int64) Outcome {
	token, rej := parseTokenRequest(payload, ts)
	if rej != nil {
		return reject(cur, rej)
	}
	if !cur.Exists {
		return reject(cur, &Error{Code: 404, Message: msgNoShadow(cur.ID), ClientToken: token})
	}
	doc := &Document{
		State: DocumentState{
			Desired:  cur.Desired,
			Reported: cur.Reported,
			Delta:    Delta(cur.Desired, cur.Reported),
		},
		Metadata:    DocumentMetadata{Desired: cur.MetaDesired, Reported: cur.MetaReported},
		Version:     cur.Version,
		Timestamp:   ts,
		ClientToken: token,
	}
	return Outcome{Shadow: cur, Accepted: doc}
}

func remove(cur Shadow, payload []byte, ts int64) Outcome {
	token, rej := parseTokenRequest(payload, ts)
	if rej != nil {
		return reject(cur, rej)
	}
	if !cur.Exists {
		return reject(cur, &Error{Code: 404, Message: msgNoShadow(cur.ID), ClientToken: token})
	}
	next := Shadow{ID: cur.ID, Version: cur.Version + 1, DeletedAt: ts}
	return Outcome{Shadow: next, Accepted: &DeleteAccepted{Version: cur.Version, Timestamp: ts, ClientToken: token}}
}

func update(cur Shadow, payload []byte, ts int64) Outcome {
	req, rej := parseUpdate(payload, ts)
	if rej != nil {
		return reject(cur, rej)
	}
	base := cur.Version
	if !cur.Exists && cur.DeletedAt != 0 && ts-cur.DeletedAt > int64(DeletedVersionMemory/time.Second) {
		base = 0
	}
	// A version is checked against the shadow's current version, also for a shadow that
	// does not exist yet (0, or the remembered version of a deleted one). AWS's answer
	// for that case is undocumented; this reading is the consistent one
	// (docs/protocol.md#version-check-on-a-missing-shadow).
	if req.hasVersion && req.version != base {
		return reject(cur, &Error{Code: 409, Message: MsgVersionConflict, ClientToken: req.token, Timestamp: ts})
	}

	next := cur
	next.Exists = true
	next.Version = base + 1
	if req.state == nil {
		next.Desired, next.Reported, next.MetaDesired, next.MetaReported = nil, nil, nil, nil
	} else {
		if sec, ok := req.state["desired"]; ok {
			next.Desired, next.MetaDesired = applySection(cur.Desired, cur.MetaDesired, sec, ts)
		}
		if sec, ok := req.state["reported"]; ok {
			next.Reported, next.MetaReported = applySection(cur.Reported, cur.MetaReported, sec, ts)
		}
	}
	if stateSize(next.Desired)+stateSize(next.Reported) > MaxStateBytes {
		return reject(cur, &Error{Code: 413, Message: MsgPayloadTooLarge, ClientToken: req.token, Timestamp: ts})
	}

	out := Outcome{Shadow: next}
	var echo any
	if req.state != nil {
		echo = req.state
	}
	out.Accepted = &UpdateAccepted{
		State:       echo,
		Metadata:    stampTree(echo, ts),
		Version:     next.Version,
		Timestamp:   ts,
		ClientToken: req.token,
	}
	// The delta goes out after every accepted update that leaves a difference, as AWS's
	// own local shadow service does; AWS documents it for updates touching the
	// differing keys and is silent on others
	// (docs/protocol.md#delta-after-unrelated-updates).
	if d := Delta(next.Desired, next.Reported); d != nil {
		out.Delta = &DeltaMessage{
			State:       d,
			Metadata:    projectMeta(d, next.MetaDesired),
			Version:     next.Version,
			Timestamp:   ts,
			ClientToken: req.token,
		}
	}
	docs := &DocumentsMessage{Current: snapshot(next), Timestamp: ts, ClientToken: req.token}
	if cur.Exists {
		prev := snapshot(cur)
		docs.Previous = &prev
	}
	out.Documents = docs
	return out
}

// applySection applies one section of an update request (an object, or null to clear
// it) to a stored section and its metadata.
func applySection(state, meta Object, sec any, ts int64) (Object, Object) {
	patch, _ := sec.(Object)
	if patch == nil {
		return nil, nil
	}
	return mergeSection(state, meta, patch, ts, true)
}

func stateSize(section Object) int {
	if section == nil {
		return 0
	}
	return jsonSize(section)
}

func snapshot(s Shadow) Snapshot {
	return Snapshot{
		State:    DocumentState{Desired: s.Desired, Reported: s.Reported},
		Metadata: DocumentMetadata{Desired: s.MetaDesired, Reported: s.MetaReported},
		Version:  s.Version,
	}
}

// Document returns the shadow as /get/accepted would carry it at time now, with no
// clientToken.
func (s Shadow) Document(now time.Time) Document {
	return Document{
		State:     DocumentState{Desired: s.Desired, Reported: s.Reported, Delta: Delta(s.Desired, s.Reported)},
		Metadata:  DocumentMetadata{Desired: s.MetaDesired, Reported: s.MetaReported},
		Version:   s.Version,
		Timestamp: now.Unix(),
	}
}

// storedShadow is how a Shadow is written to disk by MarshalJSON.
type storedShadow struct {
	Thing     string           `json:"thing"`
	Name      string           `json:"name,omitempty"`
	Exists    bool             `json:"exists"`
	State     DocumentState    `json:"state"`
	Metadata  DocumentMetadata `json:"metadata"`
	Version   int64            `json:"version"`
	DeletedAt int64            `json:"deletedAt,omitempty"`
}

// MarshalJSON encodes the whole stored shadow, deletion memory included, so that a
// store can write it to disk and UnmarshalJSON can bring it back unchanged.
func (s Shadow) MarshalJSON() ([]byte, error) {
	return json.Marshal(storedShadow{
		Thing: s.ID.Thing, Name: s.ID.Name, Exists: s.Exists,
		State:    DocumentState{Desired: s.Desired, Reported: s.Reported},
		Metadata: DocumentMetadata{Desired: s.MetaDesired, Reported: s.MetaReported},
		Version:  s.Version, DeletedAt: s.DeletedAt,
	})
}

// UnmarshalJSON decodes what MarshalJSON wrote.
func (s *Shadow) UnmarshalJSON(data []byte) error {
	var st storedShadow
	if err := Unmarshal(data, &st); err != nil {
		return err
	}
	md, mr := parseSectionMeta(st.Metadata.Desired), parseSectionMeta(st.Metadata.Reported)
	*s = Shadow{
		ID: ID{Thing: st.Thing, Name: st.Name}, Exists: st.Exists,
		Desired: st.State.Desired, Reported: st.State.Reported,
		MetaDesired: md, MetaReported: mr,
		Version: st.Version, DeletedAt: st.DeletedAt,
	}
	return nil
}

func parseSectionMeta(m Object) Object {
	if len(m) == 0 {
		return nil
	}
	o, _ := parseMeta(m).(Object)
	return o
}
