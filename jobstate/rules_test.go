package jobstate

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestCanTransition(t *testing.T) {
	all := []Status{Queued, InProgress, Succeeded, Failed, TimedOut, Rejected, Removed, Canceled}
	allowed := map[[2]Status]bool{}
	for _, from := range []Status{Queued, InProgress} {
		for _, to := range []Status{InProgress, Succeeded, Failed, Rejected} {
			allowed[[2]Status{from, to}] = true
		}
	}
	for _, from := range all {
		for _, to := range all {
			want := allowed[[2]Status{from, to}]
			if got := CanTransition(from, to); got != want {
				t.Errorf("CanTransition(%s, %s) = %v, want %v", from, to, got, want)
			}
		}
	}
	for _, s := range all {
		if s.Terminal() == s.Pending() {
			t.Errorf("%s: Terminal %v, Pending %v", s, s.Terminal(), s.Pending())
		}
	}
	if Status("DONE").Valid() || Status("DONE").Terminal() {
		t.Error("an unknown status is valid or terminal")
	}
}

// view returns one thing's view with the given executions of jobs j1 (document
// {"a":1}, in-progress timeout 1h) and j2.
func view(execs ...Execution) ThingView {
	return ThingView{Thing: "dev", Executions: execs, Jobs: map[string]JobInfo{
		"j1": {Document: json.RawMessage(`{"a":1}`), InProgressTimeout: time.Hour},
		"j2": {Document: json.RawMessage(`{"b":2}`)},
	}}
}

func queued(job string, seq uint64) Execution { return NewExecution(job, "dev", seq, t0) }

func started(job string, seq uint64) Execution {
	e := queued(job, seq).start(map[string]string{"s": "1"}, nil, 0, t0)
	return e
}

func finished(job string, seq uint64, s Status) Execution { return started(job, seq).finish(s, t0) }

func handle(t *testing.T, v ThingView, topic, payload string) Outcome {
	t.Helper()
	tp, ok := ParseTopic(topic)
	if !ok {
		t.Fatalf("ParseTopic(%q) not ok", topic)
	}
	return Handle(v, tp, []byte(payload), t0.Add(time.Minute))
}

func TestHandle(t *testing.T) {
	const p = "$aws/things/dev/jobs/"
	tests := []struct {
		name    string
		view    ThingView
		topic   string
		payload string
		// wantTopic and want are the reply; wantStatus and wantVersion the changed
		// execution's, "" when nothing changes.
		wantTopic   string
		want        string
		wantStatus  Status
		wantVersion int64
	}{
		{"get, nothing pending", view(), p + "get", ``, p + "get/accepted",
			`{"inProgressJobs":[],"queuedJobs":[],"timestamp":1767225660}`, "", 0},
		{"get lists IN_PROGRESS first", view(queued("j2", 1), started("j1", 2), finished("j3", 0, Failed)), p + "get", `{"clientToken":"c"}`, p + "get/accepted",
			`{"inProgressJobs":[{"jobId":"j1","queuedAt":1767225600,"startedAt":1767225600,"lastUpdatedAt":1767225600,"versionNumber":2,"executionNumber":1}],"queuedJobs":[{"jobId":"j2","queuedAt":1767225600,"lastUpdatedAt":1767225600,"versionNumber":1,"executionNumber":1}],"timestamp":1767225660,"clientToken":"c"}`, "", 0},
		{"start-next, nothing pending", view(), p + "start-next", `{"clientToken":"c"}`, p + "start-next/accepted",
			`{"timestamp":1767225660,"clientToken":"c"}`, "", 0},
		{"start-next starts the first QUEUED", view(queued("j2", 2), queued("j1", 1)), p + "start-next", `{"statusDetails":{"k":"v"},"stepTimeoutInMinutes":2}`, p + "start-next/accepted",
			`{"execution":{"jobId":"j1","thingName":"dev","jobDocument":{"a":1},"status":"IN_PROGRESS","statusDetails":{"k":"v"},"queuedAt":1767225600,"startedAt":1767225660,"lastUpdatedAt":1767225660,"versionNumber":2,"executionNumber":1,"approximateSecondsBeforeTimedOut":120},"timestamp":1767225660}`, InProgress, 2},
		{"start-next returns an IN_PROGRESS one unchanged", view(queued("j1", 1), started("j2", 2)), p + "start-next", `{}`, p + "start-next/accepted",
			`{"execution":{"jobId":"j2","thingName":"dev","jobDocument":{"b":2},"status":"IN_PROGRESS","statusDetails":{"s":"1"},"queuedAt":1767225600,"startedAt":1767225600,"lastUpdatedAt":1767225600,"versionNumber":2,"executionNumber":1},"timestamp":1767225660}`, "", 0},
		{"start-next with bad details", view(queued("j1", 1)), p + "start-next", `{"statusDetails":{"bad key":"v"},"clientToken":"c"}`, p + "start-next/rejected",
			`{"code":"InvalidRequest","message":"Invalid request: statusDetails name \"bad key\": only a-z, A-Z, 0-9, ':', '_' and '-' are allowed","clientToken":"c","timestamp":1767225660}`, "", 0},
		{"start-next with a step timeout too long", view(queued("j1", 1)), p + "start-next", `{"stepTimeoutInMinutes":10081}`, p + "start-next/rejected",
			`{"code":"InvalidRequest","message":"Invalid request: stepTimeoutInMinutes 10081: want 1 to 10080, or -1 to cancel the step timer","timestamp":1767225660}`, "", 0},
		{"describe", view(queued("j1", 1)), p + "j1/get", `{"includeJobDocument":false,"executionNumber":1}`, p + "j1/get/accepted",
			`{"execution":{"jobId":"j1","thingName":"dev","status":"QUEUED","queuedAt":1767225600,"lastUpdatedAt":1767225600,"versionNumber":1,"executionNumber":1},"timestamp":1767225660}`, "", 0},
		{"describe $next", view(queued("j2", 2), queued("j1", 1)), p + "$next/get", `{}`, p + "$next/get/accepted",
			`{"execution":{"jobId":"j1","thingName":"dev","jobDocument":{"a":1},"status":"QUEUED","queuedAt":1767225600,"lastUpdatedAt":1767225600,"versionNumber":1,"executionNumber":1},"timestamp":1767225660}`, "", 0},
		{"describe $next, nothing pending", view(finished("j1", 1, Succeeded)), p + "$next/get", `{"clientToken":"c"}`, p + "$next/get/accepted",
			`{"timestamp":1767225660,"clientToken":"c"}`, "", 0},
		{"describe unknown", view(), p + "j1/get", `{}`, p + "j1/get/rejected",
			`{"code":"ResourceNotFound","message":"Job execution not found","timestamp":1767225660}`, "", 0},
		{"describe wrong execution number", view(queued("j1", 1)), p + "j1/get", `{"executionNumber":2}`, p + "j1/get/rejected",
			`{"code":"ResourceNotFound","message":"Job execution not found","timestamp":1767225660}`, "", 0},
		{"describe terminal", view(finished("j1", 1, Succeeded)), p + "j1/get", `{"clientToken":"c"}`, p + "j1/get/rejected",
			`{"code":"TerminalStateReached","message":"The job execution is in a terminal state","clientToken":"c","timestamp":1767225660}`, "", 0},
		{"update QUEUED to IN_PROGRESS", view(queued("j1", 1)), p + "j1/update", `{"status":"IN_PROGRESS","expectedVersion":1,"includeJobExecutionState":true,"includeJobDocument":true}`, p + "j1/update/accepted",
			`{"executionState":{"status":"IN_PROGRESS","versionNumber":2},"jobDocument":{"a":1},"timestamp":1767225660}`, InProgress, 2},
		{"update IN_PROGRESS details", view(started("j1", 1)), p + "j1/update", `{"status":"IN_PROGRESS","statusDetails":{"p":"2"},"includeJobExecutionState":true}`, p + "j1/update/accepted",
			`{"executionState":{"status":"IN_PROGRESS","statusDetails":{"p":"2"},"versionNumber":3},"timestamp":1767225660}`, InProgress, 3},
		{"update QUEUED to REJECTED", view(queued("j1", 1)), p + "j1/update", `{"status":"REJECTED","statusDetails":{"why":"unsupported"}}`, p + "j1/update/accepted",
			`{"timestamp":1767225660}`, Rejected, 2},
		{"update IN_PROGRESS to SUCCEEDED", view(started("j1", 1)), p + "j1/update", `{"status":"SUCCEEDED","clientToken":"c"}`, p + "j1/update/accepted",
			`{"timestamp":1767225660,"clientToken":"c"}`, Succeeded, 3},
		{"update IN_PROGRESS to FAILED", view(started("j1", 1)), p + "j1/update", `{"status":"FAILED"}`, p + "j1/update/accepted",
			`{"timestamp":1767225660}`, Failed, 3},
		{"update with a stale version", view(started("j1", 1)), p + "j1/update", `{"status":"SUCCEEDED","expectedVersion":1,"clientToken":"c"}`, p + "j1/update/rejected",
			`{"code":"VersionMismatch","message":"expectedVersion does not match the job execution's version","clientToken":"c","timestamp":1767225660,"executionState":{"status":"IN_PROGRESS","statusDetails":{"s":"1"},"versionNumber":2}}`, "", 0},
		{"update a terminal execution", view(finished("j1", 1, Failed)), p + "j1/update", `{"status":"IN_PROGRESS"}`, p + "j1/update/rejected",
			`{"code":"InvalidStateTransition","message":"The job execution's status does not allow this update: FAILED to IN_PROGRESS","timestamp":1767225660,"executionState":{"status":"FAILED","statusDetails":{"s":"1"},"versionNumber":3}}`, "", 0},
		{"update to a service status", view(started("j1", 1)), p + "j1/update", `{"status":"CANCELED"}`, p + "j1/update/rejected",
			`{"code":"InvalidStateTransition","message":"The job execution's status does not allow this update: IN_PROGRESS to CANCELED","timestamp":1767225660,"executionState":{"status":"IN_PROGRESS","statusDetails":{"s":"1"},"versionNumber":2}}`, "", 0},
		{"update to QUEUED", view(queued("j1", 1)), p + "j1/update", `{"status":"QUEUED"}`, p + "j1/update/rejected",
			`{"code":"InvalidStateTransition","message":"The job execution's status does not allow this update: QUEUED to QUEUED","timestamp":1767225660,"executionState":{"status":"QUEUED","versionNumber":1}}`, "", 0},
		{"update with an unknown status", view(queued("j1", 1)), p + "j1/update", `{"status":"DONE"}`, p + "j1/update/rejected",
			`{"code":"InvalidRequest","message":"Invalid request: status \"DONE\": want IN_PROGRESS, SUCCEEDED, FAILED or REJECTED","timestamp":1767225660}`, "", 0},
		{"update with no status", view(queued("j1", 1)), p + "j1/update", `{}`, p + "j1/update/rejected",
			`{"code":"InvalidRequest","message":"Invalid request: status \"\": want IN_PROGRESS, SUCCEEDED, FAILED or REJECTED","timestamp":1767225660}`, "", 0},
		{"update of an unknown job", view(), p + "j9/update", `{"status":"SUCCEEDED"}`, p + "j9/update/rejected",
			`{"code":"ResourceNotFound","message":"Job execution not found","timestamp":1767225660}`, "", 0},
		{"update that is not JSON", view(queued("j1", 1)), p + "j1/update", `{"status"`, p + "j1/update/rejected",
			`{"code":"InvalidJson","message":"Invalid JSON: the payload is not UTF-8 encoded JSON","timestamp":1767225660}`, "", 0},
		{"update with a wrong type", view(queued("j1", 1)), p + "j1/update", `{"status":"SUCCEEDED","expectedVersion":"1","clientToken":"c"}`, p + "j1/update/rejected",
			`{"code":"InvalidRequest","message":"Invalid request: json: cannot unmarshal string into Go struct field UpdateRequest.expectedVersion of type int64","clientToken":"c","timestamp":1767225660}`, "", 0},
		{"request on no operation", view(), p + "j1/delete", `{"clientToken":"c"}`, p + "j1/delete/rejected",
			`{"code":"InvalidTopic","message":"Invalid topic: no jobs operation has this topic","clientToken":"c","timestamp":1767225660}`, "", 0},
		{"request naming an invalid job", view(), p + "a.b/update", `{}`, p + "a.b/update/rejected",
			`{"code":"InvalidTopic","message":"Invalid topic: no jobs operation has this topic","timestamp":1767225660}`, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := handle(t, tt.view, tt.topic, tt.payload)
			if out.Topic != tt.wantTopic {
				t.Errorf("topic %s, want %s", out.Topic, tt.wantTopic)
			}
			got, _ := json.Marshal(out.Reply)
			if diff := cmp.Diff(decodeAny(t, tt.want), decodeAny(t, string(got))); diff != "" {
				t.Errorf("reply (-want +got):\n%s\ngot %s", diff, got)
			}
			if (out.Rejected != nil) != strings.HasSuffix(tt.wantTopic, "/rejected") {
				t.Errorf("Rejected = %v", out.Rejected)
			}
			switch {
			case tt.wantStatus == "" && out.Changed != nil:
				t.Errorf("changed %+v, want no change", *out.Changed)
			case tt.wantStatus != "" && out.Changed == nil:
				t.Errorf("no change, want %s v%d", tt.wantStatus, tt.wantVersion)
			case tt.wantStatus != "" && (out.Changed.Status != tt.wantStatus || out.Changed.VersionNumber != tt.wantVersion):
				t.Errorf("changed to %s v%d, want %s v%d", out.Changed.Status, out.Changed.VersionNumber, tt.wantStatus, tt.wantVersion)
			}
		})
	}
}

func decodeAny(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("not JSON: %s", s)
	}
	return v
}

func TestTimeouts(t *testing.T) {
	step := int64(5)
	cancelStep := int64(StepTimeoutCancel)
	e := queued("j1", 1).start(nil, &step, time.Hour, t0)
	if got, want := e.Deadline(), t0.Add(5*time.Minute); !got.Equal(want) {
		t.Fatalf("deadline %v, want %v (the step timer, before the in-progress one)", got, want)
	}
	if _, ok := Expire(e, t0.Add(5*time.Minute-time.Nanosecond)); ok {
		t.Error("expired before its deadline")
	}
	x, ok := Expire(e, t0.Add(5*time.Minute))
	if !ok || x.Status != TimedOut || x.VersionNumber != e.VersionNumber+1 || !x.Deadline().IsZero() {
		t.Errorf("at the deadline: %v %s v%d, want TIMED_OUT v%d", ok, x.Status, x.VersionNumber, e.VersionNumber+1)
	}
	// A new step timeout replaces the old; -1 clears it, leaving the in-progress one.
	later := int64(100)
	e2 := e.start(nil, &later, time.Hour, t0.Add(time.Minute))
	if got, want := e2.Deadline(), t0.Add(time.Hour); !got.Equal(want) {
		t.Errorf("after a 100-minute step: deadline %v, want the in-progress one %v", got, want)
	}
	e3 := e.start(nil, &cancelStep, time.Hour, t0.Add(time.Minute))
	if got, want := e3.Deadline(), t0.Add(time.Hour); !got.Equal(want) || !e3.StepDeadline.IsZero() {
		t.Errorf("after -1: deadline %v, want %v", got, want)
	}
	e4 := e3.start(nil, nil, time.Hour, t0.Add(2*time.Minute))
	if !e4.StartedAt.Equal(t0) {
		t.Errorf("a second IN_PROGRESS moved startedAt to %v", e4.StartedAt)
	}
	if q := queued("j1", 1); !q.Deadline().IsZero() {
		t.Error("a QUEUED execution has a deadline")
	}
}

func TestCancel(t *testing.T) {
	tests := []struct {
		e       Execution
		force   bool
		want    Status
		changed bool
	}{
		{queued("j", 1), false, Canceled, true},
		{queued("j", 1), true, Canceled, true},
		{started("j", 1), false, InProgress, false},
		{started("j", 1), true, Canceled, true},
		{finished("j", 1, Succeeded), true, Succeeded, false},
	}
	for _, tt := range tests {
		got, changed := Cancel(tt.e, tt.force, t0)
		if got.Status != tt.want || changed != tt.changed {
			t.Errorf("Cancel(%s, force %v) = %s %v, want %s %v", tt.e.Status, tt.force, got.Status, changed, tt.want, tt.changed)
		}
		if changed && got.VersionNumber != tt.e.VersionNumber+1 {
			t.Errorf("Cancel(%s): version %d, want %d", tt.e.Status, got.VersionNumber, tt.e.VersionNumber+1)
		}
	}
}

func TestChanges(t *testing.T) {
	a, b := queued("a", 1), queued("b", 2)
	aStarted := a.start(nil, nil, 0, t0)
	bStarted := b.start(nil, nil, 0, t0)
	aDetails := aStarted.start(map[string]string{"x": "y"}, nil, 0, t0)
	aDone := aStarted.finish(Succeeded, t0)
	tests := []struct {
		name               string
		before, after      []Execution
		notify, notifyNext bool
	}{
		{"first job queued", nil, []Execution{a}, true, true},
		{"second job queued", []Execution{a}, []Execution{a, b}, true, false},
		{"front starts", []Execution{a, b}, []Execution{aStarted, b}, true, false},
		{"second starts and goes first", []Execution{a, b}, []Execution{a, bStarted}, true, true},
		{"details only", []Execution{aStarted}, []Execution{aDetails}, false, false},
		{"front ends", []Execution{aStarted, b}, []Execution{aDone, b}, true, true},
		{"last ends", []Execution{aStarted}, []Execution{aDone}, true, true},
		{"nothing pending", []Execution{aDone}, []Execution{aDone}, false, false},
	}
	for _, tt := range tests {
		n, nn := Changes(tt.before, tt.after)
		if n != tt.notify || nn != tt.notifyNext {
			t.Errorf("%s: notify %v, notify-next %v; want %v, %v", tt.name, n, nn, tt.notify, tt.notifyNext)
		}
	}
}

func TestListIsCapped(t *testing.T) {
	var execs []Execution
	for i := range 12 {
		execs = append(execs, queued("j"+string(rune('a'+i)), uint64(i)))
	}
	execs = append(execs, started("jz", 99))
	l := List(execs, t0)
	if n := len(l.Jobs[InProgress]) + len(l.Jobs[Queued]); n != MaxPendingListed {
		t.Errorf("notify lists %d executions, want %d", n, MaxPendingListed)
	}
	if l.Jobs[InProgress][0].JobID != "jz" || l.Jobs[Queued][0].JobID != "ja" {
		t.Errorf("order: %v", l.Jobs)
	}
	g := GetPending(execs, "", t0)
	if n := len(g.InProgressJobs) + len(g.QueuedJobs); n != MaxPendingListed {
		t.Errorf("get lists %d executions, want %d", n, MaxPendingListed)
	}
	data, _ := json.Marshal(List(nil, t0))
	if string(data) != `{"timestamp":1767225600,"jobs":{}}` {
		t.Errorf("empty notify = %s", data)
	}
	data, _ = json.Marshal(Next(nil, nil, t0))
	if string(data) != `{"timestamp":1767225600}` {
		t.Errorf("empty notify-next = %s", data)
	}
}

func TestValidateStatusDetails(t *testing.T) {
	many := map[string]string{}
	for i := range 11 {
		many["k"+string(rune('a'+i))] = "v"
	}
	tests := []struct {
		name string
		d    map[string]string
		ok   bool
	}{
		{"none", nil, true},
		{"ten", func() map[string]string {
			m := map[string]string{}
			for i := range 10 {
				m["k"+string(rune('a'+i))] = "v"
			}
			return m
		}(), true},
		{"eleven", many, false},
		{"key with every allowed kind", map[string]string{"aZ9:_-": "v"}, true},
		{"empty key", map[string]string{"": "v"}, false},
		{"key with a dot", map[string]string{"a.b": "v"}, false},
		{"key of 128", map[string]string{strings.Repeat("k", 128): "v"}, true},
		{"key of 129", map[string]string{strings.Repeat("k", 129): "v"}, false},
		{"empty value", map[string]string{"k": ""}, false},
		{"value of 1024 characters", map[string]string{"k": strings.Repeat("é", 1024)}, true},
		{"value of 1025", map[string]string{"k": strings.Repeat("v", 1025)}, false},
		{"value with a newline", map[string]string{"k": "a\nb"}, false},
		{"value with spaces and unicode", map[string]string{"k": "50 % — done"}, true},
	}
	for _, tt := range tests {
		if err := ValidateStatusDetails(tt.d); (err == nil) != tt.ok {
			t.Errorf("%s: %v, want ok %v", tt.name, err, tt.ok)
		}
	}
}

func TestValidateNamesAndDocuments(t *testing.T) {
	for id, ok := range map[string]bool{"a": true, "A-z_9": true, "": false, "a:b": false, "$next": false, strings.Repeat("j", 64): true, strings.Repeat("j", 65): false} {
		if err := ValidateJobID(id); (err == nil) != ok {
			t.Errorf("ValidateJobID(%q): %v, want ok %v", id, err, ok)
		}
	}
	for name, ok := range map[string]bool{"a": true, "a:b_c-d": true, "": false, "a/b": false, strings.Repeat("t", 128): true, strings.Repeat("t", 129): false} {
		if err := ValidateThingName(name); (err == nil) != ok {
			t.Errorf("ValidateThingName(%q): %v, want ok %v", name, err, ok)
		}
	}
	for doc, ok := range map[string]bool{`{}`: true, `{"a":[1]}`: true, `[]`: false, `null`: false, `"s"`: false, `{`: false, `{"x":"` + strings.Repeat("a", MaxJobDocumentBytes) + `"}`: false} {
		if err := ValidateDocument(json.RawMessage(doc)); (err == nil) != ok {
			t.Errorf("ValidateDocument(%.20q): %v, want ok %v", doc, err, ok)
		}
	}
	for m, ok := range map[int64]bool{-1: true, 0: false, 1: true, 10080: true, 10081: false, -2: false} {
		if err := ValidateStepTimeout(&m); (err == nil) != ok {
			t.Errorf("ValidateStepTimeout(%d): %v, want ok %v", m, err, ok)
		}
	}
}

func TestParseTopic(t *testing.T) {
	tests := []struct {
		topic string
		want  Topic
		ok    bool
	}{
		{"$aws/things/d/jobs/get", Topic{Thing: "d", Op: OpGetPending, Kind: KindRequest}, true},
		{"$aws/things/d/jobs/get/accepted", Topic{Thing: "d", Op: OpGetPending, Kind: KindAccepted}, true},
		{"$aws/things/d/jobs/start-next", Topic{Thing: "d", Op: OpStartNext, Kind: KindRequest}, true},
		{"$aws/things/d/jobs/start-next/rejected", Topic{Thing: "d", Op: OpStartNext, Kind: KindRejected}, true},
		{"$aws/things/d/jobs/j1/get", Topic{Thing: "d", Op: OpDescribe, JobID: "j1", Kind: KindRequest}, true},
		{"$aws/things/d/jobs/$next/get/accepted", Topic{Thing: "d", Op: OpDescribe, JobID: "$next", Kind: KindAccepted}, true},
		{"$aws/things/d/jobs/j1/update", Topic{Thing: "d", Op: OpUpdate, JobID: "j1", Kind: KindRequest}, true},
		{"$aws/things/d/jobs/get/update", Topic{Thing: "d", Op: OpUpdate, JobID: "get", Kind: KindRequest}, true},
		{"$aws/things/d/jobs/$next/update", Topic{Thing: "d", Kind: KindInvalid}, true},
		{"$aws/things/d/jobs/notify", Topic{Thing: "d", Kind: KindNotify}, true},
		{"$aws/things/d/jobs/notify-next", Topic{Thing: "d", Kind: KindNotifyNext}, true},
		{"$aws/things/d/jobs/notify/accepted", Topic{Thing: "d", Kind: KindInvalid}, true},
		{"$aws/things/d/jobs", Topic{Thing: "d", Kind: KindInvalid}, true},
		{"$aws/things/d/jobs/j1/get/extra", Topic{Thing: "d", Kind: KindInvalid}, true},
		{"$aws/things/d/shadow/get", Topic{}, false},
		{"$aws/things/a.b/jobs/get", Topic{}, false},
		{"other/things/d/jobs/get", Topic{}, false},
	}
	for _, tt := range tests {
		got, ok := ParseTopic(tt.topic)
		if ok {
			tt.want.Name = tt.topic
		}
		if ok != tt.ok || got != tt.want {
			t.Errorf("ParseTopic(%q) = %+v, %v; want %+v, %v", tt.topic, got, ok, tt.want, tt.ok)
		}
	}
	for topic, want := range map[string]bool{
		"$aws/things/d/jobs/get/accepted": true, "$aws/things/d/jobs/j/update/rejected": true,
		"$aws/things/d/jobs/notify": true, "$aws/things/d/jobs/notify-next": true, "$aws/things/a b/jobs/x/accepted": true,
		"$aws/things/d/jobs/get": false, "$aws/things/d/jobs/j/notify": false, "$aws/things/d/jobs/accepted": false,
		"$aws/things/d/shadow/get/accepted": false,
	} {
		if got := IsServiceTopic(topic); got != want {
			t.Errorf("IsServiceTopic(%q) = %v, want %v", topic, got, want)
		}
	}
	if got := RequestTopic("d", OpDescribe, "j"); got != "$aws/things/d/jobs/j/get" {
		t.Errorf("RequestTopic = %s", got)
	}
	if got := ReplyTopic("d", OpStartNext, "", KindAccepted); got != "$aws/things/d/jobs/start-next/accepted" {
		t.Errorf("ReplyTopic = %s", got)
	}
}
