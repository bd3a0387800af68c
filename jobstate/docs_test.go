package jobstate

import (
	"encoding/json"
	"os"
	"regexp"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestDocsExamples checks that the payload examples in docs/jobs.md are what the rules
// produce, for the scenario the document walks through: job-1 ({"operation":"reboot"})
// queued on MyThing at 1767225600, started a minute later with a step timeout, updated
// with a stale version, then SUCCEEDED.
func TestDocsExamples(t *testing.T) {
	data, err := os.ReadFile("../docs/jobs.md")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile("(?s)<!-- example: ([a-z0-9-]+) -->\n```json\n(.*?)\n```")
	docs := map[string]string{}
	for _, m := range re.FindAllStringSubmatch(string(data), -1) {
		docs[m[1]] = m[2]
	}

	const p = "$aws/things/MyThing/jobs/"
	jobs := map[string]JobInfo{"job-1": {Document: json.RawMessage(`{"operation":"reboot"}`)}}
	e := NewExecution("job-1", "MyThing", 1, t0)
	v := func() ThingView { return ThingView{Thing: "MyThing", Executions: []Execution{e}, Jobs: jobs} }
	at := func(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }
	got := map[string]any{
		"notify-queued":      List([]Execution{e}, t0),
		"notify-next-queued": Next([]Execution{e}, jobs, t0),
	}
	run := func(name, topic, payload string, now time.Time) {
		tp, _ := ParseTopic(topic)
		out := Handle(v(), tp, []byte(payload), now)
		got[name] = out.Reply
		if out.Changed != nil {
			e = *out.Changed
		}
	}
	run("get-accepted", p+"get", `{"clientToken":"c-1"}`, t0)
	run("start-next-accepted", p+"start-next", `{"statusDetails":{"step":"download"},"stepTimeoutInMinutes":10,"clientToken":"c-2"}`, at(1))
	got["notify-in-progress"] = List([]Execution{e}, at(1))
	run("update-version-mismatch", p+"job-1/update", `{"status":"SUCCEEDED","expectedVersion":1,"clientToken":"c-3"}`, at(2))
	run("update-accepted", p+"job-1/update", `{"status":"SUCCEEDED","statusDetails":{"step":"done"},"expectedVersion":2,"includeJobExecutionState":true,"clientToken":"c-4"}`, at(3))
	got["notify-empty"] = List([]Execution{e}, at(3))
	got["notify-next-empty"] = Next([]Execution{e}, jobs, at(3))
	run("describe-terminal", p+"job-1/get", `{"clientToken":"c-5"}`, at(4))

	for name, v := range got {
		doc, ok := docs[name]
		if !ok {
			gotJSON, _ := json.Marshal(v)
			t.Errorf("docs/jobs.md has no example %q; the rules give %s", name, gotJSON)
			continue
		}
		gotJSON, _ := json.Marshal(v)
		if diff := cmp.Diff(decodeAny(t, doc), decodeAny(t, string(gotJSON))); diff != "" {
			t.Errorf("example %s (-docs +rules):\n%s\nrules: %s", name, diff, gotJSON)
		}
	}
	for name := range docs {
		if _, ok := got[name]; !ok {
			t.Errorf("docs/jobs.md example %q is not checked", name)
		}
	}
}
