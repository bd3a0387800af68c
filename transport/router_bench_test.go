package transport

import (
	"fmt"
	"log/slog"
	"testing"
)

// benchRouter returns a router holding n subscriptions, one per thing, on the delta
// topic of each thing's classic shadow (how a client that names every shadow
// subscribes), plus the 8 wildcard filters of a shadow client when wildcards is set.
// Each subscription's buffer holds one message; no goroutine drains it.
func benchRouter(n int, wildcards bool) (*router, map[string]*Subscription) {
	r := &router{log: slog.New(slog.DiscardHandler)}
	subs := make(map[string]*Subscription, n+8)
	add := func(filter string) {
		s := &Subscription{filter: filter, qos: 1, box: newMailbox(1), quit: make(chan struct{}), done: make(chan struct{})}
		r.add(s)
		subs[filter] = s
	}
	for i := range n {
		add(fmt.Sprintf("$aws/things/thing-%05d/shadow/update/delta", i))
	}
	if wildcards {
		for _, f := range []string{
			"$aws/things/+/shadow/+/accepted", "$aws/things/+/shadow/+/rejected",
			"$aws/things/+/shadow/update/delta", "$aws/things/+/shadow/update/documents",
			"$aws/things/+/shadow/name/+/+/accepted", "$aws/things/+/shadow/name/+/+/rejected",
			"$aws/things/+/shadow/name/+/update/delta", "$aws/things/+/shadow/name/+/update/documents",
		} {
			add(f)
		}
	}
	return r, subs
}

// BenchmarkRouterDispatch routes one message through the router: with 10,000
// subscriptions the topic matches one of them, or none; with the 8 wildcard filters
// alone, one.
func BenchmarkRouterDispatch(b *testing.B) {
	cases := []struct {
		name      string
		n         int
		wildcards bool
		topic     string
		want      []string // filters that receive it
	}{
		{"10000-exact/hit", 10000, false, "$aws/things/thing-04711/shadow/update/delta", []string{"$aws/things/thing-04711/shadow/update/delta"}},
		{"10000-exact/miss", 10000, false, "$aws/things/other/shadow/update/documents", nil},
		{"8-wildcards/hit", 0, true, "$aws/things/thing-04711/shadow/update/documents", []string{"$aws/things/+/shadow/update/documents"}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			r, subs := benchRouter(tc.n, tc.wildcards)
			var want []*Subscription
			for _, f := range tc.want {
				want = append(want, subs[f])
			}
			m := Message{Topic: tc.topic, Payload: []byte(`{"state":{"seq":1}}`), QoS: 1}
			b.ReportAllocs()
			for b.Loop() {
				r.dispatch(m, nil)
				for _, s := range want {
					if _, ok := s.box.take(); !ok {
						b.Fatal("not delivered")
					}
				}
			}
		})
	}
}

// BenchmarkMatchFilter matches one topic against one filter: the unit of work the
// router repeats for every filter it holds.
func BenchmarkMatchFilter(b *testing.B) {
	cases := []struct{ name, filter, topic string }{
		{"exact-miss", "$aws/things/thing-00001/shadow/update/delta", "$aws/things/thing-04711/shadow/update/delta"},
		{"exact-hit", "$aws/things/thing-04711/shadow/update/delta", "$aws/things/thing-04711/shadow/update/delta"},
		{"wildcard-hit", "$aws/things/+/shadow/name/+/update/delta", "$aws/things/thing-04711/shadow/name/cfg/update/delta"},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				matchFilter(tc.filter, tc.topic)
			}
		})
	}
}
