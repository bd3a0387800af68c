package shadowstate

import (
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"unicode/utf8"
)

// updateRequest is a validated /update payload.
type updateRequest struct {
	state      Object // nil for "state": null
	token      string
	version    int64
	hasVersion bool
}

// parseUpdate validates an /update payload against the service's rules, in the order
// of docs/protocol.md#order-of-checks. AWS's precedence between several failing checks
// is unknown; this order reports the most basic problem first. The clientToken is echoed
// on every rejection once it is known to be valid.
func parseUpdate(payload []byte, ts int64) (updateRequest, *Error) {
	var req updateRequest
	top, rej := parseEnvelope(payload, ts)
	if rej != nil {
		return req, rej
	}
	req.token, rej = clientToken(top, ts)
	if rej != nil {
		return req, rej
	}
	fail := func(code int, msg string) (updateRequest, *Error) {
		return req, &Error{Code: code, Message: msg, ClientToken: req.token, Timestamp: ts}
	}
	rawState, ok := top["state"]
	if !ok {
		return fail(400, MsgMissingState)
	}
	if rawState != nil {
		state, ok := rawState.(Object)
		if !ok {
			return fail(400, MsgStateNotObject)
		}
		for _, k := range slices.Sorted(maps.Keys(state)) {
			if k != "desired" && k != "reported" {
				return fail(400, msgInvalidNode(k))
			}
		}
		for _, sec := range [...]struct{ key, msg string }{
			{"desired", MsgDesiredNotObject},
			{"reported", MsgReportedNotObject},
		} {
			v, ok := state[sec.key]
			if !ok || v == nil {
				continue
			}
			if _, ok := v.(Object); !ok {
				return fail(400, sec.msg)
			}
			if depth(v) > MaxDepth {
				return fail(400, MsgTooDeep)
			}
			if arrayHoldsNull(v, false) {
				return fail(400, MsgArrayHoldsNull)
			}
		}
		req.state = state
	}
	if v, ok := top["version"]; ok {
		n, isNum := v.(json.Number)
		if !isNum {
			return fail(400, MsgInvalidVersion)
		}
		ver, err := strconv.ParseInt(string(n), 10, 64)
		if err != nil || ver < 0 {
			return fail(400, MsgInvalidVersion)
		}
		req.version, req.hasVersion = ver, true
	}
	return req, nil
}

// parseTokenRequest validates a /get or /delete payload: empty, or a JSON object whose
// only meaningful member is an optional clientToken.
func parseTokenRequest(payload []byte, ts int64) (string, *Error) {
	if len(payload) == 0 {
		return "", nil
	}
	top, rej := parseEnvelope(payload, ts)
	if rej != nil {
		return "", rej
	}
	return clientToken(top, ts)
}

// parseEnvelope checks that payload is UTF-8 and a JSON object, and decodes it.
func parseEnvelope(payload []byte, ts int64) (Object, *Error) {
	if len(payload) > MaxPayloadBytes {
		return nil, &Error{Code: 413, Message: MsgPayloadTooLarge, Timestamp: ts}
	}
	if !utf8.Valid(payload) {
		return nil, &Error{Code: 415, Message: MsgUnsupportedEncoding, Timestamp: ts}
	}
	var top Object
	// A JSON value that is not an object (an array, a string, null) is not a shadow
	// request either; AWS documents no separate message for it.
	if err := Unmarshal(payload, &top); err != nil || top == nil {
		return nil, &Error{Code: 400, Message: MsgInvalidJSON, Timestamp: ts}
	}
	return top, nil
}

// clientToken returns the request's clientToken. A token that is not a string of at
// most 64 bytes is rejected and, being invalid, not echoed.
func clientToken(top Object, ts int64) (string, *Error) {
	v, ok := top["clientToken"]
	if !ok {
		return "", nil
	}
	s, ok := v.(string)
	if !ok || len(s) > MaxClientTokenBytes {
		return "", &Error{Code: 400, Message: MsgInvalidClientToken, Timestamp: ts}
	}
	return s, nil
}
