package localiot

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fakeClock is a Clock that moves only when a test advances it; the timers that come
// due run on the advancing goroutine, so a timeout's effects are done when Advance
// returns.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	at      time.Time
	f       func()
	stopped bool
}

// t0 is when fake clocks start: 2026-01-01T00:00:00Z.
var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func newFakeClock() *fakeClock { return &fakeClock{now: t0} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) func() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	tm := &fakeTimer{at: c.now.Add(d), f: f}
	c.timers = append(c.timers, tm)
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		was := !tm.stopped
		tm.stopped = true
		c.timers = slices.DeleteFunc(c.timers, func(x *fakeTimer) bool { return x == tm })
		return was
	}
}

// Advance moves the clock on by d and runs the timers due by then, earliest first.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	now := c.now
	c.mu.Unlock()
	for {
		c.mu.Lock()
		var due *fakeTimer
		for _, tm := range c.timers {
			if !tm.at.After(now) && (due == nil || tm.at.Before(due.at)) {
				due = tm
			}
		}
		if due != nil {
			due.stopped = true
			c.timers = slices.DeleteFunc(c.timers, func(x *fakeTimer) bool { return x == due })
		}
		c.mu.Unlock()
		if due == nil {
			return
		}
		due.f()
	}
}

// ts returns the epoch seconds of t0 plus d, as the replies show them.
func ts(d time.Duration) string { return fmt.Sprint(t0.Add(d).Unix()) }

// expectJSON fails the test unless the next message received is on topic with a JSON
// payload equal to want, in which "T+n" strings stand for ts(n seconds) numbers.
func (c *client) expectJSON(t *testing.T, topic, want string) {
	t.Helper()
	m := c.next(t)
	if m.Topic() != topic {
		t.Fatalf("received %s on %s, want a message on %s", m.Payload(), m.Topic(), topic)
	}
	var got, exp any
	if err := json.Unmarshal(m.Payload(), &got); err != nil {
		t.Fatalf("payload on %s is not JSON: %q", topic, m.Payload())
	}
	if err := json.Unmarshal([]byte(expandTimes(want)), &exp); err != nil {
		t.Fatalf("bad want %q: %v", want, err)
	}
	if diff := cmp.Diff(exp, got); diff != "" {
		t.Fatalf("payload on %s (-want +got):\n%s\ngot %s", topic, diff, m.Payload())
	}
}

// expandTimes replaces "T+n" (with the quotes) by the epoch seconds of t0 plus n
// seconds.
func expandTimes(s string) string {
	for {
		i := strings.Index(s, `"T+`)
		if i < 0 {
			return s
		}
		j := strings.Index(s[i+1:], `"`) + i + 1
		var n int
		fmt.Sscanf(s[i+3:j], "%d", &n)
		s = s[:i] + ts(time.Duration(n)*time.Second) + s[j+1:]
	}
}

// expectNothingPending checks that the client's next message is the reply to a get,
// proving nothing else was delivered before it: every message the service sends a
// thing is ordered behind what it sent before.
func (c *client) expectNothingPending(t *testing.T, thing string) {
	t.Helper()
	c.publish(t, "$aws/things/"+thing+"/jobs/get", `{"clientToken":"sync"}`)
	m := c.next(t)
	if m.Topic() != "$aws/things/"+thing+"/jobs/get/accepted" || !strings.Contains(string(m.Payload()), `"clientToken":"sync"`) {
		t.Fatalf("unexpected message %s on %s", m.Payload(), m.Topic())
	}
}
