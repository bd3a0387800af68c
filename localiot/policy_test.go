package localiot

import (
	"testing"
)

func TestFilterCovers(t *testing.T) {
	tests := []struct {
		pattern, filter string
		want            bool
	}{
		{"a/b", "a/b", true},
		{"a/b", "a/c", false},
		{"a/+", "a/b", true},
		{"a/+", "a/+", true},
		{"a/+", "a/#", false},
		{"a/+", "a/b/c", false},
		{"a/#", "a", true},
		{"a/#", "a/b/c", true},
		{"a/#", "a/+/c", true},
		{"a/b", "a/+", false},
		{"#", "x/y", true},
		{"#", "$aws/things/x", false},
		{"+/y", "$aws/y", false},
		{"devices/X/#", "devices/Y/t", false},
	}
	for _, tt := range tests {
		t.Run(tt.pattern+" ⊇ "+tt.filter, func(t *testing.T) {
			if got := filterCovers(tt.pattern, tt.filter); got != tt.want {
				t.Errorf("filterCovers(%q, %q) = %v, want %v", tt.pattern, tt.filter, got, tt.want)
			}
		})
	}
}

func TestPolicy(t *testing.T) {
	pol := &policy{thingTopics: []string{"devices/${thing}/#", "broadcast"}}
	x := principal{thing: "X"}
	op := principal{operator: true}
	tests := []struct {
		name     string
		who      principal
		topic    string
		pub, sub bool
	}{
		{"own update request", x, "$aws/things/X/shadow/update", true, true},
		{"own get request", x, "$aws/things/X/shadow/get", true, true},
		{"own delete on named shadow", x, "$aws/things/X/shadow/name/motor/delete", true, true},
		{"own delta", x, "$aws/things/X/shadow/update/delta", false, true},
		{"own named documents", x, "$aws/things/X/shadow/name/motor/update/documents", false, true},
		{"own named accepted, any name", x, "$aws/things/X/shadow/name/+/get/accepted", false, true},
		{"own get/delta is no topic", x, "$aws/things/X/shadow/get/delta", false, false},
		{"own shadow wildcard", x, "$aws/things/X/shadow/#", false, false},
		{"own op wildcard", x, "$aws/things/X/shadow/+/accepted", false, false},
		{"other thing's update", x, "$aws/things/Y/shadow/update", false, false},
		{"other thing's delta", x, "$aws/things/Y/shadow/update/delta", false, false},
		{"any thing's delta", x, "$aws/things/+/shadow/update/delta", false, false},
		{"configured own topic", x, "devices/X/telemetry", true, true},
		{"configured other thing's topic", x, "devices/Y/telemetry", false, false},
		{"configured topic", x, "broadcast", true, true},
		{"unconfigured topic", x, "other", false, false},
		{"shared subscription", x, "$share/g/devices/X/t", false, true},
		{"operator anywhere", op, "anything/at/all", true, true},
		{"operator on a request", op, "$aws/things/Y/shadow/name/n/update", true, true},
		{"operator on accepted", op, "$aws/things/Y/shadow/update/accepted", false, true},
		{"operator on rejected", op, "$aws/things/Y/shadow/name/n/get/rejected", false, true},
		{"operator on documents", op, "$aws/things/Y/shadow/update/documents", false, true},
		{"operator on response of a bad name", op, "$aws/things/a b/shadow/update/accepted", false, true},
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

func TestTopicWithinLimits(t *testing.T) {
	tests := []struct {
		topic string
		want  bool
	}{
		{"a/b/c/d/e/f/g/h", true},
		{"a/b/c/d/e/f/g/h/i", false},
		{"$aws/rules/r/a/b/c/d/e/f/g/h", true},
		{"$share/g/a/b/c/d/e/f/g/h", true},
		{string(make([]byte, 256)), true},
		{string(make([]byte, 257)), false},
	}
	for _, tt := range tests {
		if got := topicWithinLimits(tt.topic); got != tt.want {
			t.Errorf("topicWithinLimits(%.40q) = %v, want %v", tt.topic, got, tt.want)
		}
	}
}

// TestThingIsolation drives the policy over real sockets: a thing's certificate
// reaches its own shadow topics only.
func TestThingIsolation(t *testing.T) {
	certs, err := EnsureCerts("", "X", "Y")
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, Options{TLS: certs.TLSListener(""), ThingTopics: []string{"devices/${thing}/#"}})
	url := s.Endpoints().TLS
	cfg := func(name string) clientOption {
		c, err := certs.ClientTLS(name)
		if err != nil {
			t.Fatal(err)
		}
		return withTLS(c)
	}
	op := mustConnect(t, url, "op", cfg(OperatorCertName))
	op.mustSubscribe(t, "$aws/things/+/shadow/update", "$aws/things/+/shadow/update/accepted", "devices/#")
	x := mustConnect(t, url, "X", cfg("X"))

	t.Run("subscribe to another thing's shadow fails", func(t *testing.T) {
		got := x.subscribe(t, 1, "$aws/things/Y/shadow/update/delta", "$aws/things/Y/shadow/get/accepted", "$aws/things/X/shadow/get/accepted")
		want := map[string]byte{"$aws/things/Y/shadow/update/delta": 0x80, "$aws/things/Y/shadow/get/accepted": 0x80, "$aws/things/X/shadow/get/accepted": 1}
		for f, code := range want {
			if got[f] != code {
				t.Errorf("SUBACK for %s = %#x, want %#x", f, got[f], code)
			}
		}
	})

	t.Run("publish to another thing's shadow is dropped", func(t *testing.T) {
		x.publish(t, "$aws/things/Y/shadow/update", "forbidden")
		x.publish(t, "devices/Y/t", "forbidden")
		x.publish(t, "$aws/things/X/shadow/update", "sentinel")
		op.expect(t, "$aws/things/X/shadow/update", "sentinel")
		x.publish(t, "devices/X/t", "allowed")
		op.expect(t, "devices/X/t", "allowed")
	})

	t.Run("nobody publishes to update/accepted", func(t *testing.T) {
		// Each sentinel follows the forgery on the same connection, which the broker
		// handles in order: had the forgery passed, it would arrive first.
		for _, c := range []*client{x, op} {
			c.publish(t, "$aws/things/X/shadow/update/accepted", "forged")
			c.publish(t, "$aws/things/X/shadow/update", "sentinel")
			op.expect(t, "$aws/things/X/shadow/update", "sentinel")
		}
		if !x.IsConnected() || !op.IsConnected() {
			t.Error("a dropped publish disconnected its publisher")
		}
	})

	t.Run("the broker's inline client publishes responses", func(t *testing.T) {
		x.mustSubscribe(t, "$aws/things/X/shadow/update/accepted")
		if err := s.broker.Publish("$aws/things/X/shadow/update/accepted", []byte("from service"), false, 1); err != nil {
			t.Fatal(err)
		}
		x.expect(t, "$aws/things/X/shadow/update/accepted", "from service")
		op.expect(t, "$aws/things/X/shadow/update/accepted", "from service")
	})

	t.Run("a thing is refused when its name is not a valid thing name", func(t *testing.T) {
		bad, err := certs.ca.issue("bad name", false, certs.CA.NotBefore, certs.CA.NotAfter)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := certs.ClientTLS("X")
		c.Certificates[0] = bad
		if _, err := connect(t, url, "bad", withTLS(c)); err == nil {
			t.Error("connect succeeded")
		}
	})
}

func TestPlainThingFromClientID(t *testing.T) {
	s := startServer(t, Options{Plain: &PlainListener{ThingFromClientID: true}})
	url := s.Endpoints().Plain
	c := mustConnect(t, url, "Pump-7")
	got := c.subscribe(t, 1, "$aws/things/Pump-7/shadow/update/delta", "$aws/things/Pump-8/shadow/update/delta")
	if got["$aws/things/Pump-7/shadow/update/delta"] != 1 || got["$aws/things/Pump-8/shadow/update/delta"] != 0x80 {
		t.Errorf("SUBACK codes %v, want own granted, other refused", got)
	}
	if _, err := connect(t, url, "not a thing name"); err == nil {
		t.Error("connect with an invalid thing name as client ID succeeded")
	}
}
