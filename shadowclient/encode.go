package shadowclient

import (
	"encoding/json"
	"strconv"

	"github.com/shadowsync/shadowsync/shadowstate"
)

// encodeUpdate returns the JSON text of an update request, byte for byte what
// json.Marshal(req) returns, without its reflection and its copy of each section:
// the sections are appended as they are when json.Marshal would not change them
// (compact, valid JSON with nothing it escapes), and json.Marshal does the rest.
func encodeUpdate(req shadowstate.UpdateRequest) ([]byte, error) {
	if req.State == nil || !plainSection(req.State.Desired) || !plainSection(req.State.Reported) || !plainToken(req.ClientToken) {
		return json.Marshal(req)
	}
	s := req.State
	b := make([]byte, 0, len(s.Desired)+len(s.Reported)+len(req.ClientToken)+80)
	b = append(b, `{"state":{`...)
	if len(s.Desired) > 0 {
		b = append(b, `"desired":`...)
		b = append(b, s.Desired...)
	}
	if len(s.Reported) > 0 {
		if len(s.Desired) > 0 {
			b = append(b, ',')
		}
		b = append(b, `"reported":`...)
		b = append(b, s.Reported...)
	}
	b = append(b, '}')
	if req.ClientToken != "" {
		b = append(b, `,"clientToken":"`...)
		b = append(b, req.ClientToken...)
		b = append(b, '"')
	}
	if req.Version != nil {
		b = append(b, `,"version":`...)
		b = strconv.AppendInt(b, *req.Version, 10)
	}
	return append(b, '}'), nil
}

// plainSection reports whether json.Marshal would copy raw, a json.RawMessage, as it
// is: empty (left out), or valid JSON with no whitespace to compact and no byte that
// starts a character it escapes (<, >, &, U+2028, U+2029).
func plainSection(raw json.RawMessage) bool {
	if len(raw) == 0 {
		return true
	}
	for _, c := range raw {
		switch c {
		case ' ', '\t', '\r', '\n', '<', '>', '&', 0xE2:
			return false
		}
	}
	return json.Valid(raw)
}

// plainToken reports whether token needs no escaping in a JSON string: the tokens
// this client makes (clienttoken.New) never do.
func plainToken(token string) bool {
	for i := 0; i < len(token); i++ {
		c := token[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}
