package jobstate

import "strings"

// Op is an operation of the jobs MQTT API.
type Op string

// The operations, named by the last level of their request topic.
const (
	// OpGetPending lists the thing's pending executions: .../jobs/get.
	OpGetPending Op = "get-pending"
	// OpStartNext starts the thing's next pending execution: .../jobs/start-next.
	OpStartNext Op = "start-next"
	// OpDescribe describes one execution: .../jobs/{jobId}/get.
	OpDescribe Op = "describe"
	// OpUpdate updates one execution: .../jobs/{jobId}/update.
	OpUpdate Op = "update"
)

// Kind says what a topic under $aws/things/{thing}/jobs/ carries.
type Kind string

// The kinds of jobs topics.
const (
	// KindRequest is a topic a device publishes a request to.
	KindRequest Kind = "request"
	// KindAccepted and KindRejected are the replies to a request: its topic plus
	// "/accepted" or "/rejected".
	KindAccepted Kind = "accepted"
	KindRejected Kind = "rejected"
	// KindNotify is .../jobs/notify, the ListNotification event.
	KindNotify Kind = "notify"
	// KindNotifyNext is .../jobs/notify-next, the NextNotification event.
	KindNotifyNext Kind = "notify-next"
	// KindInvalid is a topic in a thing's jobs namespace that maps to no operation; a
	// request published there is answered with InvalidTopic on the topic plus
	// "/rejected".
	KindInvalid Kind = "invalid"
)

// Topic is a parsed jobs topic. JobID is set for OpDescribe and OpUpdate (it may be
// NextJobID for OpDescribe); Op is set for KindRequest, KindAccepted and KindRejected.
// Name is the topic itself.
type Topic struct {
	Name  string
	Thing string
	Op    Op
	JobID string
	Kind  Kind
}

// Prefix returns $aws/things/{thing}/jobs.
func Prefix(thing string) string { return "$aws/things/" + thing + "/jobs" }

// RequestTopic returns the topic a device publishes op to; jobID is used by
// OpDescribe and OpUpdate only.
func RequestTopic(thing string, op Op, jobID string) string {
	switch op {
	case OpGetPending:
		return Prefix(thing) + "/get"
	case OpStartNext:
		return Prefix(thing) + "/start-next"
	case OpDescribe:
		return Prefix(thing) + "/" + jobID + "/get"
	case OpUpdate:
		return Prefix(thing) + "/" + jobID + "/update"
	}
	return ""
}

// ReplyTopic returns the accepted or rejected topic of a request.
func ReplyTopic(thing string, op Op, jobID string, kind Kind) string {
	return RequestTopic(thing, op, jobID) + "/" + string(kind)
}

// NotifyTopic returns $aws/things/{thing}/jobs/notify.
func NotifyTopic(thing string) string { return Prefix(thing) + "/notify" }

// NotifyNextTopic returns $aws/things/{thing}/jobs/notify-next.
func NotifyNextTopic(thing string) string { return Prefix(thing) + "/notify-next" }

// ParseTopic parses a topic under $aws/things/{thing}/jobs/. ok is false for a topic
// outside every thing's jobs namespace, or whose thing name is invalid. A topic
// inside it that maps to no operation, event or reply, including a request naming an
// invalid job ID, has Kind KindInvalid.
func ParseTopic(topic string) (t Topic, ok bool) {
	rest, found := strings.CutPrefix(topic, "$aws/things/")
	if !found {
		return t, false
	}
	levels := strings.Split(rest, "/")
	if len(levels) < 2 || levels[1] != "jobs" || ValidateThingName(levels[0]) != nil {
		return t, false
	}
	t.Name, t.Thing = topic, levels[0]
	t.Kind = KindInvalid
	l := levels[2:]
	kindOf := func(s string) Kind {
		switch s {
		case "accepted":
			return KindAccepted
		case "rejected":
			return KindRejected
		}
		return ""
	}
	// Split off a reply suffix, then name the request.
	kind := KindRequest
	if n := len(l); n >= 2 && kindOf(l[n-1]) != "" {
		kind, l = kindOf(l[n-1]), l[:n-1]
	}
	switch {
	case len(l) == 1 && kind == KindRequest && l[0] == "notify":
		t.Kind = KindNotify
	case len(l) == 1 && kind == KindRequest && l[0] == "notify-next":
		t.Kind = KindNotifyNext
	case len(l) == 1 && l[0] == "get":
		t.Op, t.Kind = OpGetPending, kind
	case len(l) == 1 && l[0] == "start-next":
		t.Op, t.Kind = OpStartNext, kind
	case len(l) == 2 && l[1] == "get" && (l[0] == NextJobID || ValidateJobID(l[0]) == nil):
		t.Op, t.JobID, t.Kind = OpDescribe, l[0], kind
	case len(l) == 2 && l[1] == "update" && ValidateJobID(l[0]) == nil:
		t.Op, t.JobID, t.Kind = OpUpdate, l[0], kind
	}
	return t, true
}

// IsServiceTopic reports whether topic is one only the jobs service publishes to: a
// reply (.../accepted or .../rejected) or an event (notify, notify-next) under any
// thing's jobs namespace, valid names or not.
func IsServiceTopic(topic string) bool {
	levels := strings.Split(topic, "/")
	if len(levels) < 4 || levels[0] != "$aws" || levels[1] != "things" || levels[3] != "jobs" {
		return false
	}
	last := levels[len(levels)-1]
	switch {
	case last == "accepted" || last == "rejected":
		return len(levels) >= 6
	case len(levels) == 5 && (last == "notify" || last == "notify-next"):
		return true
	}
	return false
}
