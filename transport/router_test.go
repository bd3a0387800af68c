package transport

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"
)

func TestMatchFilter(t *testing.T) {
	tests := []struct {
		filter, topic string
		want          bool
	}{
		{"a/b", "a/b", true},
		{"a/b", "a/c", false},
		{"a/+", "a/b", true},
		{"a/+", "a/b/c", false},
		{"a/+", "a", false},
		{"a/#", "a", true}, // MQTT 3.1.1 §4.7.1.2
		{"a/#", "a/b/c", true},
		{"#", "a/b", true},
		{"+/+", "a/b", true},
		{"+", "a/b", false},
		{"+/b", "/b", true},
		{"#", "$aws/things/x/shadow/update", false},
		{"+/things/#", "$aws/things/x", false},
		{"$aws/things/+/shadow/#", "$aws/things/x/shadow/update/delta", true},
		{"$aws/things/+/shadow/name/+/update/delta", "$aws/things/t/shadow/name/n/update/delta", true},
		{"$share/g1/a/+", "a/b", true},
		{"$share/g1/a/+", "$share/g1/a/b", false},
		{"a/b/", "a/b/", true},
		{"a/b/", "a/b", false},
	}
	for _, tt := range tests {
		if got := matchFilter(tt.filter, tt.topic); got != tt.want {
			t.Errorf("matchFilter(%q, %q) = %v, want %v", tt.filter, tt.topic, got, tt.want)
		}
	}
}

func TestValidFilter(t *testing.T) {
	for _, ok := range []string{"a", "a/+/c", "#", "a/#", "+", "$share/g/a/#", "$aws/things/+/shadow/update/delta"} {
		if err := validFilter(ok); err != nil {
			t.Errorf("validFilter(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a/#/c", "a+/b", "a/b#", "$share/", "$share/g", "$share//a", "$share/g+/a", "a\x00"} {
		if err := validFilter(bad); !errors.Is(err, ErrInvalidTopic) {
			t.Errorf("validFilter(%q) = %v, want ErrInvalidTopic", bad, err)
		}
	}
	for _, bad := range []string{"", "a/+", "a/#"} {
		if err := validTopic(bad); !errors.Is(err, ErrInvalidTopic) {
			t.Errorf("validTopic(%q) = %v", bad, err)
		}
	}
	if err := validQoS(2); !errors.Is(err, ErrQoS2) {
		t.Errorf("validQoS(2) = %v", err)
	}
}

// TestRouterIsolation: in the router alone, a handler that panics or blocks does not
// stop another handler of the same filter, and a full buffer drops rather than
// blocking dispatch.
func TestRouterIsolation(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	r := router{log: slog.New(slog.DiscardHandler)}
	release := make(chan struct{})
	got := make(chan string, 10)
	mk := func(h HandlerFunc, buf int) *Subscription {
		s := &Subscription{filter: "t/+", h: h, box: newMailbox(buf), quit: make(chan struct{}), done: make(chan struct{})}
		r.add(s)
		go s.run(ctx, r.log)
		return s
	}
	subs := []*Subscription{
		mk(func(context.Context, Message) { panic("boom") }, 4),
		mk(func(ctx context.Context, _ Message) {
			select {
			case <-release:
			case <-ctx.Done():
			}
		}, 1),
		mk(func(_ context.Context, m Message) { got <- m.Topic }, 4),
	}
	start := time.Now()
	for _, topic := range []string{"t/1", "t/2", "t/3"} {
		r.dispatch(Message{Topic: topic}, nil)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("dispatch blocked for %v", d)
	}
	for _, want := range []string{"t/1", "t/2", "t/3"} {
		select {
		case topic := <-got:
			if topic != want {
				t.Errorf("got %s, want %s", topic, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("healthy handler did not get %s", want)
		}
	}
	close(release)
	for _, s := range subs {
		s.halt()
		<-s.done
	}
}

// TestRouterRoutesExactAndWildcardFilters: exact filters are looked up and wildcard
// and shared ones matched; a message reaches every matching filter exactly once, and
// removing a filter stops its deliveries.
func TestRouterRoutesExactAndWildcardFilters(t *testing.T) {
	r := router{log: slog.New(slog.DiscardHandler)}
	subs := map[string]*Subscription{}
	for _, f := range []string{"a/b", "a/+", "#", "$share/g/a/b", "a/c", "x/#"} {
		s := &Subscription{filter: f, box: newMailbox(8)}
		r.add(s)
		subs[f] = s
	}
	r.dispatch(Message{Topic: "a/b"}, nil)
	for f, s := range subs {
		want := map[string]int{"a/b": 1, "a/+": 1, "#": 1, "$share/g/a/b": 1}[f]
		if got := s.box.len(); got != want {
			t.Errorf("filter %s got %d copies of a/b, want %d", f, got, want)
		}
		for s.box.len() > 0 {
			s.box.take()
		}
	}
	r.remove(subs["a/+"])
	r.remove(subs["a/b"])
	r.dispatch(Message{Topic: "a/b"}, nil)
	if subs["a/+"].box.len() != 0 || subs["a/b"].box.len() != 0 {
		t.Error("a removed filter still gets messages")
	}
	if subs["#"].box.len() != 1 || subs["$share/g/a/b"].box.len() != 1 {
		t.Error("the remaining filters lost their messages")
	}
}
