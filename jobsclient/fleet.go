package jobsclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/shadowsync/shadowsync/jobstate"
	"github.com/shadowsync/shadowsync/transport"
)

// FleetWatch says which events Client.WatchFleet delivers: the notify-next events of
// every thing whose name starts with Prefix.
type FleetWatch struct {
	// Prefix selects the things: events of names not starting with it are dropped
	// before any handle is made for them. Empty means every thing.
	Prefix string
	// Group, when set, joins the MQTT shared subscription group of that name
	// ($share/Group/$aws/things/+/jobs/notify-next): each event goes to one member
	// of the group, so several processes share a fleet. Empty means this client gets
	// every event.
	Group string
	// OnNotifyNext receives the events, with the handle of the thing (as Client.Thing
	// gives it). Events of one thing are delivered one at a time, in order, on the
	// thing's event goroutine, as OnNotifyNext's are: it may make requests.
	OnNotifyNext func(ctx context.Context, t *Thing, n *jobstate.NextNotification)
}

// fleetFilter is the notify-next topic of every thing.
const fleetFilter = "$aws/things/+/jobs/notify-next"

// WatchFleet subscribes to the notify-next events of every thing — the way a fleet
// service discovers the things that have jobs, since MQTT cannot list things — and
// delivers those of the things w.Prefix selects to w.OnNotifyNext. It returns a
// function that stops the watch (unsubscribing within Options.Timeout); Close stops
// every watch still running.
//
// A Group's members share events only if no other filter of theirs covers the same
// topics: the broker delivers a message once per matching subscription, and the
// connection hands it to every handler whose filter matches. Use WildcardsReplies,
// whose requests subscribe to reply topics only; with WildcardsAuto past the filter
// budget, or WildcardsAlways, every member receives every event (still correct for a
// caller that fences its work, but no longer shared).
func (c *Client) WatchFleet(ctx context.Context, w FleetWatch) (func(), error) {
	if w.OnNotifyNext == nil {
		return nil, errors.New("jobsclient: watch fleet: no callback")
	}
	if strings.ContainsAny(w.Group, "/+#") {
		return nil, fmt.Errorf("jobsclient: watch fleet: group %q may not contain '/', '+' or '#'", w.Group)
	}
	filter := fleetFilter
	if w.Group != "" {
		filter = "$share/" + w.Group + "/" + fleetFilter
	}
	h := transport.HandlerFunc(func(ctx context.Context, m transport.Message) {
		tp, ok := jobstate.ParseTopic(m.Topic)
		if !ok || tp.Kind != jobstate.KindNotifyNext || !strings.HasPrefix(tp.Thing, w.Prefix) {
			return
		}
		t, err := c.Thing(tp.Thing)
		if err != nil {
			return
		}
		var n jobstate.NextNotification
		if err := json.Unmarshal(m.Payload, &n); err != nil {
			c.log.Warn("malformed notify-next dropped", "thing", tp.Thing, "error", err)
			return
		}
		t.post(func() { t.safely("fleet notify-next", func() { w.OnNotifyNext(ctx, t, &n) }) })
	})
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("jobsclient: watch fleet: %w", ErrClientClosed)
	}
	s, err := c.conn.Subscribe(ctx, filter, h, transport.QoS(1), transport.Buffer(8192))
	if err != nil {
		return nil, fmt.Errorf("jobsclient: watch fleet: subscribe %s: %w", filter, err)
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		_ = s.Unsubscribe(ctx)
		return nil, fmt.Errorf("jobsclient: watch fleet: %w", ErrClientClosed)
	}
	if c.fleet == nil {
		c.fleet = make(map[int]*transport.Subscription)
	}
	n := c.nextW
	c.nextW++
	c.fleet[n] = s
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		_, ok := c.fleet[n]
		delete(c.fleet, n)
		c.mu.Unlock()
		if !ok {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.opts.Timeout)
		defer cancel()
		if err := s.Unsubscribe(ctx); err != nil && !errors.Is(err, transport.ErrClosed) {
			c.log.Warn("stopping a fleet watch: unsubscribe failed", "error", err)
		}
	}, nil
}
