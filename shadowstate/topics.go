package shadowstate

import (
	"errors"
	"fmt"
	"strings"
)

// ID names one shadow: a thing and, for a named shadow, the shadow's name. An empty
// Name is the thing's classic shadow.
type ID struct {
	Thing string
	Name  string
}

// String returns "thing" for a classic shadow and "thing/name" for a named one.
func (id ID) String() string {
	if id.Name == "" {
		return id.Thing
	}
	return id.Thing + "/" + id.Name
}

// Kind is what a shadow topic carries for its operation: the request a client
// publishes, or the service's accepted or rejected reply, delta or documents message.
// It is the suffix after the operation in the topic name.
type Kind string

// The kinds of shadow topic. Request is the empty suffix, the topic a client
// publishes to.
const (
	Request   Kind = ""
	Accepted  Kind = "accepted"
	Rejected  Kind = "rejected"
	DeltaKind Kind = "delta"
	Documents Kind = "documents"
)

// Prefix returns the topic prefix of the shadow: $aws/things/{thing}/shadow for the
// classic shadow and $aws/things/{thing}/shadow/name/{name} for a named one.
func (id ID) Prefix() string {
	if id.Name == "" {
		return "$aws/things/" + id.Thing + "/shadow"
	}
	return "$aws/things/" + id.Thing + "/shadow/name/" + id.Name
}

// Topic returns the topic of an operation (kind Request) or of one of its replies.
// Thing or Name may be the MQTT wildcard "+" to build a subscription filter.
func (id ID) Topic(op Op, kind Kind) string {
	// Each case is one concatenation: one allocation per topic.
	switch {
	case id.Name == "" && kind == Request:
		return "$aws/things/" + id.Thing + "/shadow/" + string(op)
	case id.Name == "":
		return "$aws/things/" + id.Thing + "/shadow/" + string(op) + "/" + string(kind)
	case kind == Request:
		return "$aws/things/" + id.Thing + "/shadow/name/" + id.Name + "/" + string(op)
	}
	return "$aws/things/" + id.Thing + "/shadow/name/" + id.Name + "/" + string(op) + "/" + string(kind)
}

// ParseTopic splits a shadow topic into the shadow, the operation and the reply kind
// (Request for the topic a client publishes to). ok is false for any topic that is not
// one of the shadow protocol's topics, including names that break AWS's rules.
func ParseTopic(topic string) (id ID, op Op, kind Kind, ok bool) {
	rest, found := strings.CutPrefix(topic, "$aws/things/")
	if !found {
		return ID{}, "", "", false
	}
	// A shadow topic has at most six levels after $aws/things/; split without
	// allocating, as every message a shadow client receives goes through here.
	var levels [6]string
	n := 0
	for {
		if n == len(levels) {
			return ID{}, "", "", false
		}
		i := strings.IndexByte(rest, '/')
		if i < 0 {
			levels[n] = rest
			n++
			break
		}
		levels[n], rest = rest[:i], rest[i+1:]
		n++
	}
	parts := levels[:n]
	if len(parts) < 3 || parts[1] != "shadow" {
		return ID{}, "", "", false
	}
	id.Thing = parts[0]
	parts = parts[2:]
	if parts[0] == "name" {
		if len(parts) < 3 || parts[1] == "" {
			return ID{}, "", "", false
		}
		id.Name = parts[1]
		parts = parts[2:]
	}
	if len(parts) > 2 || id.Validate() != nil {
		return ID{}, "", "", false
	}
	op = Op(parts[0])
	if len(parts) == 2 {
		kind = Kind(parts[1])
	}
	switch {
	case kind == Request || kind == Accepted || kind == Rejected:
		ok = op == OpGet || op == OpUpdate || op == OpDelete
	case kind == DeltaKind || kind == Documents:
		ok = op == OpUpdate
	}
	if !ok {
		return ID{}, "", "", false
	}
	return id, op, kind, true
}

// ErrInvalidName is returned (wrapped, naming the offending value) for a thing or
// shadow name that AWS IoT would refuse.
var ErrInvalidName = errors.New("shadowstate: invalid name")

// Validate checks the thing and shadow names against AWS's rules: a thing name is 1 to
// 128 bytes of a-z, A-Z, 0-9, ':', '_' and '-'; a shadow name is up to 64 bytes of the
// same characters, and may also contain '$' (AWS reserves names such as "$package").
func (id ID) Validate() error {
	if err := checkName("thing", id.Thing, MaxThingNameBytes, false); err != nil {
		return err
	}
	if id.Name == "" {
		return nil
	}
	return checkName("shadow", id.Name, MaxShadowNameBytes, true)
}

func checkName(what, s string, maxLen int, dollar bool) error {
	if s == "" {
		return fmt.Errorf("%w: empty %s name", ErrInvalidName, what)
	}
	if len(s) > maxLen {
		return fmt.Errorf("%w: %s name is %d bytes, at most %d allowed", ErrInvalidName, what, len(s), maxLen)
	}
	for i, c := range s {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == ':' || c == '_' || c == '-' || dollar && c == '$' {
			continue
		}
		return fmt.Errorf("%w: %s name %q has %q at byte %d; only a-z, A-Z, 0-9, ':', '_' and '-' are allowed", ErrInvalidName, what, s, c, i)
	}
	return nil
}

// MirrorTopic returns where a shadow service that mirrors its events under prefix
// publishes a copy of a message sent on topic: the $aws/ prefix is replaced by
// prefix + "/" (so $aws/things/T/shadow/update/delta becomes
// <prefix>/things/T/shadow/update/delta). An empty prefix returns topic unchanged.
func MirrorTopic(prefix, topic string) string {
	if prefix == "" {
		return topic
	}
	return prefix + "/" + strings.TrimPrefix(topic, "$aws/")
}
