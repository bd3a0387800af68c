package localiot

import "testing"

func TestPolicyJobsTopics(t *testing.T) {
	pol := &policy{}
	x := principal{thing: "X"}
	op := principal{operator: true}
	tests := []struct {
		name     string
		who      principal
		topic    string
		pub, sub bool
	}{
		{"own get", x, "$aws/things/X/jobs/get", true, true},
		{"own start-next", x, "$aws/things/X/jobs/start-next", true, true},
		{"own describe", x, "$aws/things/X/jobs/j1/get", true, true},
		{"own describe next", x, "$aws/things/X/jobs/$next/get", true, true},
		{"own update", x, "$aws/things/X/jobs/j1/update", true, true},
		{"own topic of no operation", x, "$aws/things/X/jobs/nothing", true, true},
		{"own update accepted", x, "$aws/things/X/jobs/j1/update/accepted", false, true},
		{"own get rejected", x, "$aws/things/X/jobs/get/rejected", false, true},
		{"own notify", x, "$aws/things/X/jobs/notify", false, true},
		{"own notify-next", x, "$aws/things/X/jobs/notify-next", false, true},
		{"own replies of any job", x, "$aws/things/X/jobs/+/update/accepted", false, true},
		{"own jobs namespace", x, "$aws/things/X/jobs/#", false, true},
		{"other thing's get", x, "$aws/things/Y/jobs/get", false, false},
		{"other thing's update", x, "$aws/things/Y/jobs/j1/update", false, false},
		{"other thing's notify", x, "$aws/things/Y/jobs/notify", false, false},
		{"any thing's notify-next", x, "$aws/things/+/jobs/notify-next", false, false},
		{"every thing's jobs", x, "$aws/things/#", false, false},
		{"operator request", op, "$aws/things/Y/jobs/get", true, true},
		{"operator on notify", op, "$aws/things/Y/jobs/notify", false, true},
		{"operator on a reply", op, "$aws/things/Y/jobs/j/update/rejected", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pol.mayPublish(tt.who, tt.topic); got != tt.pub {
				t.Errorf("mayPublish(%v, %q) = %v, want %v", tt.who, tt.topic, got, tt.pub)
			}
			if got := pol.mayRead(tt.who, tt.topic); got != tt.sub {
				t.Errorf("mayRead(%v, %q) = %v, want %v", tt.who, tt.topic, got, tt.sub)
			}
		})
	}
}
