package transport

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// maxTopicBytes is MQTT's limit on a topic or filter (AWS IoT allows 256 bytes for
// the topic proper; the server enforces that).
const maxTopicBytes = 65535

// sharePrefix starts a shared subscription filter: $share/<group>/<filter>.
const sharePrefix = "$share/"

// validQoS accepts QoS 0 and 1 and refuses 2 with ErrQoS2.
func validQoS(q byte) error {
	switch q {
	case 0, 1:
		return nil
	case 2:
		return ErrQoS2
	}
	return fmt.Errorf("%w: QoS %d does not exist", ErrInvalidTopic, q)
}

// validTopic checks a topic name for PUBLISH: non-empty UTF-8 without wildcards or NUL.
func validTopic(topic string) error {
	switch {
	case topic == "":
		return fmt.Errorf("%w: empty topic", ErrInvalidTopic)
	case len(topic) > maxTopicBytes || !utf8.ValidString(topic):
		return fmt.Errorf("%w: %q is too long or not UTF-8", ErrInvalidTopic, topic)
	case strings.ContainsAny(topic, "+#\x00"):
		return fmt.Errorf("%w: %q: a topic name may not contain + or #", ErrInvalidTopic, topic)
	}
	return nil
}

// splitShare splits "$share/group/filter" into group and filter; a filter without
// the prefix has an empty group.
func splitShare(filter string) (group, inner string) {
	rest, ok := strings.CutPrefix(filter, sharePrefix)
	if !ok {
		return "", filter
	}
	group, inner, _ = strings.Cut(rest, "/")
	return group, inner
}

// validFilter checks a topic filter for SUBSCRIBE: "+" only as a whole level, "#"
// only as the whole last level, and for $share/<group>/<filter> a non-empty group
// without wildcards and a valid filter.
func validFilter(filter string) error {
	if filter == "" {
		return fmt.Errorf("%w: empty filter", ErrInvalidTopic)
	}
	if len(filter) > maxTopicBytes || !utf8.ValidString(filter) || strings.ContainsRune(filter, 0) {
		return fmt.Errorf("%w: %q is too long or not UTF-8", ErrInvalidTopic, filter)
	}
	if strings.HasPrefix(filter, sharePrefix) {
		group, inner := splitShare(filter)
		if group == "" || strings.ContainsAny(group, "+#") || inner == "" {
			return fmt.Errorf("%w: %q: want $share/<group>/<filter>", ErrInvalidTopic, filter)
		}
		filter = inner
	}
	levels := strings.Split(filter, "/")
	for i, l := range levels {
		switch {
		case l == "#" && i != len(levels)-1:
			return fmt.Errorf("%w: %q: # must be the last level", ErrInvalidTopic, filter)
		case l != "#" && l != "+" && strings.ContainsAny(l, "+#"):
			return fmt.Errorf("%w: %q: a wildcard must fill its whole level", ErrInvalidTopic, filter)
		}
	}
	return nil
}

// matchFilter reports whether topic matches filter (a valid filter, possibly
// $share/<group>/…, whose group is ignored). As MQTT 3.1.1 says, "a/#" also matches
// "a", and a filter starting with a wildcard does not match topics starting with "$".
func matchFilter(filter, topic string) bool {
	_, filter = splitShare(filter)
	if strings.HasPrefix(topic, "$") && (strings.HasPrefix(filter, "+") || strings.HasPrefix(filter, "#")) {
		return false
	}
	for {
		f, fRest, fMore := strings.Cut(filter, "/")
		if f == "#" {
			return true
		}
		t, tRest, tMore := strings.Cut(topic, "/")
		if f != "+" && f != t {
			return false
		}
		switch {
		case !fMore && !tMore:
			return true
		case !tMore:
			// topic exhausted: only a trailing "/#" still matches ("a/#" matches "a").
			return fRest == "#"
		case !fMore:
			return false
		}
		filter, topic = fRest, tRest
	}
}
