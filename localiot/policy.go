package localiot

import (
	"strings"

	"github.com/shadowsync/shadowsync/jobstate"
)

// thingPlaceholder in Options.ThingTopics stands for the connected thing's name.
const thingPlaceholder = "${thing}"

// principal is who a connection acts as, fixed when it connects: an operator, who may
// use every topic, or a thing, restricted like an AWS IoT policy for that thing.
type principal struct {
	operator bool
	thing    string // the thing's name when !operator
}

func (p principal) String() string {
	if p.operator {
		return "operator"
	}
	return "thing " + p.thing
}

// policy decides which topics a principal may use, mirroring an AWS IoT policy that
// grants a thing its own shadow topics plus configured non-reserved topics. It is
// immutable and safe for concurrent use.
type policy struct {
	thingTopics []string // filters with thingPlaceholder, from Options.ThingTopics
}

// mayPublish reports whether p may publish to topic. Nobody may publish a shadow
// service response, nor a jobs reply or event; that is left to the services, which
// publish through the broker's inline client and never reach this check. A thing may
// publish anywhere else in its own jobs namespace (a topic that maps to no operation
// gets InvalidTopic).
func (pol *policy) mayPublish(p principal, topic string) bool {
	if isShadowResponse(topic) || jobstate.IsServiceTopic(topic) {
		return false
	}
	if p.operator {
		return true
	}
	if op, kind, ok := ownShadowTopic(p.thing, splitLevels(topic)); ok {
		return kind == "" && op != ""
	}
	if ownJobsTopic(p.thing, topic) {
		return !strings.ContainsAny(topic, "+#")
	}
	return pol.thingTopicCovers(p.thing, topic)
}

// mayRead reports whether p may subscribe to filter, or receive a message on a topic
// (a filter without wildcards). A thing may subscribe to its own shadow's request and
// response topics, with "+" for a named shadow's name, to any filter inside its own
// jobs namespace ($aws/things/{thing}/jobs/#), and to filters inside its ThingTopics;
// "$share/{group}/" is looked through.
func (pol *policy) mayRead(p principal, filter string) bool {
	if p.operator {
		return true
	}
	filter = stripShare(filter)
	if _, _, ok := ownShadowTopic(p.thing, splitLevels(filter)); ok {
		return true
	}
	if ownJobsTopic(p.thing, filter) {
		return true
	}
	return pol.thingTopicCovers(p.thing, filter)
}

func (pol *policy) thingTopicCovers(thing, filter string) bool {
	for _, pattern := range pol.thingTopics {
		if filterCovers(strings.ReplaceAll(pattern, thingPlaceholder, thing), filter) {
			return true
		}
	}
	return false
}

// ownShadowTopic reports whether levels name one of thing's shadow protocol topics:
// $aws/things/{thing}/shadow[/name/{name}]/{op}[/{kind}]. A named shadow's name may be
// the "+" wildcard; no other wildcard is accepted. op is get, update or delete; kind
// is "" for the request topic, else accepted, rejected, delta or documents.
func ownShadowTopic(thing string, levels []string) (op, kind string, ok bool) {
	if len(levels) < 5 || levels[0] != "$aws" || levels[1] != "things" || levels[2] != thing || levels[3] != "shadow" {
		return "", "", false
	}
	rest := levels[4:]
	if rest[0] == "name" {
		if len(rest) < 3 || rest[1] == "" || rest[1] == "#" || strings.ContainsAny(rest[1], "+#") && rest[1] != "+" {
			return "", "", false
		}
		rest = rest[2:]
	}
	switch len(rest) {
	case 1:
		op = rest[0]
	case 2:
		op, kind = rest[0], rest[1]
	default:
		return "", "", false
	}
	switch op {
	case "get", "delete":
		ok = kind == "" || kind == "accepted" || kind == "rejected"
	case "update":
		ok = kind == "" || kind == "accepted" || kind == "rejected" || kind == "delta" || kind == "documents"
	}
	if !ok {
		return "", "", false
	}
	return op, kind, true
}

// isShadowResponse reports whether topic is a topic only the shadow service may
// publish to: .../shadow/.../accepted, /rejected, /update/delta or /update/documents,
// for any thing or shadow name, valid or not.
func isShadowResponse(topic string) bool {
	levels := splitLevels(topic)
	if len(levels) < 6 || levels[0] != "$aws" || levels[1] != "things" || levels[3] != "shadow" {
		return false
	}
	last, prev := levels[len(levels)-1], levels[len(levels)-2]
	switch last {
	case "accepted", "rejected":
		return true
	case "delta", "documents":
		return prev == "update"
	}
	return false
}

// filterCovers reports whether every topic that filter matches is also matched by
// pattern; with a wildcard-free filter, whether pattern matches that topic. Like
// MQTT matching, wildcards never match a leading "$" level.
func filterCovers(pattern, filter string) bool {
	p, f := splitLevels(pattern), splitLevels(filter)
	for i, pl := range p {
		if pl == "#" {
			return i > 0 || !strings.HasPrefix(f[0], "$")
		}
		if i >= len(f) {
			return false
		}
		fl := f[i]
		switch {
		case pl == "+":
			if fl == "#" || i == 0 && strings.HasPrefix(fl, "$") {
				return false
			}
		case fl == "+" || fl == "#" || fl != pl:
			return false
		}
	}
	return len(f) == len(p)
}

// topicWithinLimits reports whether a topic name or filter fits AWS's 256-byte and
// 7-slash limits; "$share/{group}/" and the Basic Ingest "$aws/rules/{rule}/" prefix
// do not count.
func topicWithinLimits(topic string) bool {
	topic = stripShare(topic)
	if rest, ok := strings.CutPrefix(topic, "$aws/rules/"); ok {
		if _, after, found := strings.Cut(rest, "/"); found {
			topic = after
		}
	}
	return len(topic) <= maxTopicBytes && strings.Count(topic, "/") <= maxTopicSlashes
}

// stripShare removes a "$share/{group}/" prefix from a subscription filter.
func stripShare(filter string) string {
	if rest, ok := strings.CutPrefix(filter, "$share/"); ok {
		if _, after, found := strings.Cut(rest, "/"); found {
			return after
		}
	}
	return filter
}

func splitLevels(topic string) []string { return strings.Split(topic, "/") }
