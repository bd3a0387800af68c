package shadowclient

import (
	"testing"

	"github.com/shadowsync/shadowsync/shadowstate"
)

func TestMirrorTopic(t *testing.T) {
	for _, tc := range []struct{ prefix, topic, want string }{
		{"", "$aws/things/a/shadow/update/delta", "$aws/things/a/shadow/update/delta"},
		{"fleet/events", "$aws/things/a/shadow/update/delta", "fleet/events/things/a/shadow/update/delta"},
		{"m", "$aws/things/+/shadow/name/cfg/update/documents", "m/things/+/shadow/name/cfg/update/documents"},
	} {
		got := shadowstate.MirrorTopic(tc.prefix, tc.topic)
		if got != tc.want {
			t.Errorf("MirrorTopic(%q, %q) = %q, want %q", tc.prefix, tc.topic, got, tc.want)
		}
		if back := unmirror(tc.prefix, got); back != tc.topic {
			t.Errorf("unmirror(%q, %q) = %q, want %q", tc.prefix, got, back, tc.topic)
		}
	}
	if got := unmirror("m", "other/things/a"); got != "other/things/a" {
		t.Errorf("unmirror of a topic outside the prefix changed it: %q", got)
	}
}
