package shadowstate

import (
	"encoding/json"
	"fmt"
)

// Document is a whole shadow as /get/accepted carries it: desired, reported and their
// delta, the metadata of each written leaf, the version, the time of the response and
// the request's clientToken.
type Document struct {
	State       DocumentState    `json:"state"`
	Metadata    DocumentMetadata `json:"metadata"`
	Version     int64            `json:"version"`
	Timestamp   int64            `json:"timestamp"`
	ClientToken string           `json:"clientToken,omitempty"`
}

// DocumentState holds a shadow's state sections; an empty section is absent.
type DocumentState struct {
	Desired  Object `json:"desired,omitempty"`
	Reported Object `json:"reported,omitempty"`
	Delta    Object `json:"delta,omitempty"`
}

// DocumentMetadata mirrors DocumentState with a {"timestamp": N} object for every leaf.
// Delta is never sent by localiot; AWS's documentation shows it in /get/accepted while
// AWS's service is reported to omit it (docs/protocol.md#metadatadelta), so clients must
// not rely on it.
type DocumentMetadata struct {
	Desired  Object `json:"desired,omitempty"`
	Reported Object `json:"reported,omitempty"`
	Delta    Object `json:"delta,omitempty"`
}

// UpdateAccepted is the /update/accepted message: the request's state as it was sent
// (nulls included; nil when the request sent "state": null), fresh metadata for every
// leaf of the request, and the shadow's new version. It is not the merged document.
type UpdateAccepted struct {
	State       any    `json:"state"`
	Metadata    any    `json:"metadata"`
	Version     int64  `json:"version"`
	Timestamp   int64  `json:"timestamp"`
	ClientToken string `json:"clientToken,omitempty"`
}

// DeltaMessage is the /update/delta message: State is the delta itself (no desired
// wrapper), Metadata the stored timestamps of the desired values it carries, and
// Version and Timestamp those of the update that caused it.
type DeltaMessage struct {
	State       Object `json:"state"`
	Metadata    Object `json:"metadata"`
	Version     int64  `json:"version"`
	Timestamp   int64  `json:"timestamp"`
	ClientToken string `json:"clientToken,omitempty"`
}

// Snapshot is a shadow's full state at one version, as /update/documents carries it.
type Snapshot struct {
	State    DocumentState    `json:"state"`
	Metadata DocumentMetadata `json:"metadata"`
	Version  int64            `json:"version"`
}

// DocumentsMessage is the /update/documents message published after every accepted
// update. Previous is nil for the update that created the shadow.
type DocumentsMessage struct {
	Previous    *Snapshot `json:"previous"`
	Current     Snapshot  `json:"current"`
	Timestamp   int64     `json:"timestamp"`
	ClientToken string    `json:"clientToken,omitempty"`
}

// DeleteAccepted is the /delete/accepted message: the version the shadow had when it
// was deleted.
type DeleteAccepted struct {
	Version     int64  `json:"version"`
	Timestamp   int64  `json:"timestamp"`
	ClientToken string `json:"clientToken,omitempty"`
}

// UpdateRequest is what a client publishes on /update. A nil State sends "state": null,
// which clears both sections; a section left empty is not sent, and a section set to
// the JSON text null clears that section. Version, when set, makes the update apply
// only if the shadow is at exactly that version.
type UpdateRequest struct {
	State       *StateUpdate `json:"state"`
	ClientToken string       `json:"clientToken,omitempty"`
	Version     *int64       `json:"version,omitempty"`
}

// StateUpdate holds the sections of an update request as JSON text.
type StateUpdate struct {
	Desired  json.RawMessage `json:"desired,omitempty"`
	Reported json.RawMessage `json:"reported,omitempty"`
}

// TokenRequest is what a client publishes on /get and /delete to have its clientToken
// echoed in the answer.
type TokenRequest struct {
	ClientToken string `json:"clientToken,omitempty"`
}

// Error is a rejection by the Device Shadow service, as a */rejected message carries
// it: AWS's HTTP-style code and message, the request's clientToken and, for most
// errors, a timestamp. Match it with errors.As.
type Error struct {
	Code        int    `json:"code"`
	Message     string `json:"message"`
	ClientToken string `json:"clientToken,omitempty"`
	Timestamp   int64  `json:"timestamp,omitempty"`
}

// Error returns the code and AWS's message.
func (e *Error) Error() string {
	return fmt.Sprintf("shadow request rejected: %d %s", e.Code, e.Message)
}
