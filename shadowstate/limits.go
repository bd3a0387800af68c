package shadowstate

import (
	"time"

	"github.com/shadowsync/shadowsync/internal/awsiot"
)

// AWS's limits and messages for the Device Shadow service (docs/protocol.md#limits and
// #rejections). Where AWS's documentation is unsure, the choice is made here, once,
// with the reason.
const (
	// MaxStateBytes is the largest desired plus reported state a shadow may hold,
	// counted as the compact JSON of both sections after the update is merged. Metadata
	// does not count. How AWS counts the bytes exactly is undocumented
	// (docs/protocol.md#state-size).
	MaxStateBytes = 8192

	// MaxDepth is how many levels of objects and arrays a desired or reported section
	// may nest below itself: {"a":{"b":1}} is 2 levels. AWS's error text says 6 and
	// AWS's own local shadow service accepts 6 and rejects 7
	// (docs/protocol.md#nesting-depth).
	MaxDepth = 6

	// MaxClientTokenBytes is the longest clientToken the service accepts.
	MaxClientTokenBytes = 64

	// MaxPayloadBytes is the largest MQTT payload AWS IoT's broker accepts; the shadow
	// service refuses larger requests even when a broker lets them through.
	MaxPayloadBytes = awsiot.MaxPayloadBytes

	// MaxThingNameBytes and MaxShadowNameBytes bound thing and shadow names.
	MaxThingNameBytes  = 128
	MaxShadowNameBytes = 64

	// DeletedVersionMemory is how long a deleted shadow's version is remembered: an
	// update within it continues from the old version, after it starts again at 1.
	DeletedVersionMemory = 48 * time.Hour
)

// AWS's rejection messages, as the service sends them in */rejected.
const (
	MsgUnsupportedEncoding = "Unsupported documented encoding; supported encoding is UTF-8"
	MsgInvalidJSON         = "Invalid JSON"
	MsgMissingState        = "Missing required node: state"
	MsgStateNotObject      = "State node must be an object"
	MsgDesiredNotObject    = "Desired node must be an object"
	MsgReportedNotObject   = "Reported node must be an object"
	MsgInvalidVersion      = "Invalid version"
	MsgInvalidClientToken  = "Invalid clientToken"
	MsgTooDeep             = "JSON contains too many levels of nesting; maximum is 6"
	MsgVersionConflict     = "Version conflict"
	MsgPayloadTooLarge     = "The payload exceeds the maximum size allowed"
	// MsgArrayHoldsNull answers an array containing null. AWS documents that such
	// arrays are rejected but not with which code or text; this is our wording
	// (docs/protocol.md#message-texts).
	MsgArrayHoldsNull = "Arrays may not contain null values"
	// MsgThrottled answers a request the service is too busy to take, with
	// CodeThrottled. AWS documents the 429 code for too many requests in flight but
	// not its text; this is HTTP's reason phrase for 429 (docs/protocol.md#message-texts).
	MsgThrottled = "Too Many Requests"
)

// CodeThrottled is the rejection code for a request refused because too many are
// waiting (docs/protocol.md#message-texts).
const CodeThrottled = 429

// msgInvalidNode is the message for a key inside "state" other than desired and
// reported. AWS documents "State contains an invalid node"; a mock verified against AWS
// appends the key in quotes (docs/protocol.md#message-texts), which is also the more
// useful of the two.
func msgInvalidNode(key string) string {
	return "State contains an invalid node: '" + key + "'"
}

// msgNoShadow is the 404 message. It names the shadow for a named shadow and the thing
// for the classic one, in single quotes, as the service does.
func msgNoShadow(id ID) string {
	name := id.Name
	if name == "" {
		name = id.Thing
	}
	return "No shadow exists with name: '" + name + "'"
}
