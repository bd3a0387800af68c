package shadowclient

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/shadowsync/shadowsync/shadowstate"
	"github.com/shadowsync/shadowsync/transport"
)

// FleetWatch says which events Client.WatchFleet delivers: the deltas and documents
// messages of one shadow (classic or named) of every thing.
type FleetWatch struct {
	// Shadow is the named shadow to watch on every thing; "" means the classic shadow.
	Shadow string
	// Group, when set, joins the MQTT shared subscription group of that name
	// ($share/Group/...): each event goes to one member of the group, so several
	// processes share a fleet. Empty means this client gets every event.
	Group string
	// Mirror, when set, watches the events on the mirror topics a shadow service
	// publishes under this prefix instead of the reserved $aws topics:
	// <Mirror>/things/<thing>/shadow/update/delta and so on (see MirrorTopic). Some
	// brokers (mosquitto 2.0) never deliver topics beginning with '$' to shared
	// subscriptions; the mirror lets a Group work there. Empty means the $aws topics.
	Mirror string
	// OnDelta and OnDocuments receive the events; either may be nil. Each runs on a
	// goroutine of its own, one message at a time, and may call any client method.
	OnDelta     func(ctx context.Context, id shadowstate.ID, m *shadowstate.DeltaMessage)
	OnDocuments func(ctx context.Context, id shadowstate.ID, m *shadowstate.DocumentsMessage)
	// OnDeltaAck and OnDocumentsAck replace OnDelta and OnDocuments (set one of each
	// pair at most) for a watch that acknowledges each event to the broker only when
	// it has acted on it: the callback calls ack then, from any goroutine
	// (transport.ManualAck). Over a persistent session (transport.Config.
	// PersistentSession) an event not yet acknowledged when the process dies is
	// delivered again when it comes back, to it or, once its session is gone, to
	// nobody. Call ack for every event, soon: the broker sends a client only so many
	// unacknowledged messages at a time. Events that are malformed or about another
	// shadow are acknowledged without reaching the callback.
	OnDeltaAck     func(ctx context.Context, id shadowstate.ID, m *shadowstate.DeltaMessage, ack func())
	OnDocumentsAck func(ctx context.Context, id shadowstate.ID, m *shadowstate.DocumentsMessage, ack func())
	// DocumentsStateOnly leaves the metadata and the previous state out of the
	// documents messages given to OnDocuments, as StateOnly does for a Handle: for
	// callbacks that need only the current state, at a fraction of the decoding cost.
	DocumentsStateOnly bool
	// Things, when set, picks the things whose events this watch handles: events of
	// other things are dropped before they are decoded. A pool of connections that
	// each watch the whole fleet uses it to give every thing's events to one
	// connection only. Nil means every thing.
	Things func(thing string) bool
}

// WatchFleet subscribes to the delta and documents messages of a shadow of every thing
// — the way a fleet service discovers things, since MQTT cannot list them — and
// delivers each to the callbacks with the shadow it is about. Malformed messages are
// logged and dropped. It returns a function that stops the watch, as Handle.OnDelta
// does for one shadow: it unsubscribes the watch's filters, waiting for the UNSUBACK
// within Options.Timeout and logging a failure (Close stops every watch still
// running). The connection's policy must allow the wildcard filters (on AWS IoT, a
// policy with iot:Subscribe on topicfilter/$aws/things/*/shadow/...; see
// docs/fleet.md).
func (c *Client) WatchFleet(ctx context.Context, w FleetWatch) (func(), error) {
	if err := w.validate(); err != nil {
		return nil, fmt.Errorf("watch fleet: %w", err)
	}
	if c.isClosed() {
		return nil, fmt.Errorf("watch fleet: %w", ErrClientClosed)
	}
	unsubscribe, err := c.subscribeFleet(ctx, w)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		_ = unsubscribe(ctx)
		return nil, fmt.Errorf("watch fleet: %w", ErrClientClosed)
	}
	if c.watches == nil {
		c.watches = make(map[int]func(context.Context) error)
	}
	n := c.nextW
	c.nextW++
	c.watches[n] = unsubscribe
	c.mu.Unlock()
	return func() { c.stopWatch(n, unsubscribe) }, nil
}

// validate checks a FleetWatch before anything is subscribed.
func (w *FleetWatch) validate() error {
	if w.Shadow != "" {
		if err := (shadowstate.ID{Thing: "x", Name: w.Shadow}).Validate(); err != nil {
			return err
		}
	}
	if strings.ContainsAny(w.Group, "/+#") {
		return fmt.Errorf("group %q may not contain '/', '+' or '#'", w.Group)
	}
	if w.OnDelta == nil && w.OnDocuments == nil && w.OnDeltaAck == nil && w.OnDocumentsAck == nil {
		return errors.New("no callback")
	}
	if (w.OnDelta != nil && w.OnDeltaAck != nil) || (w.OnDocuments != nil && w.OnDocumentsAck != nil) {
		return errors.New("set OnDelta or OnDeltaAck, OnDocuments or OnDocumentsAck, not both")
	}
	if strings.ContainsAny(w.Mirror, "+#") || strings.HasPrefix(w.Mirror, "$") || strings.HasSuffix(w.Mirror, "/") {
		return fmt.Errorf("mirror prefix %q may not contain '+' or '#', start with '$' or end with '/'", w.Mirror)
	}
	return nil
}

// filter returns the topic filter of the watch for the delta or documents topic.
func (w *FleetWatch) filter(kind shadowstate.Kind) string {
	prefix := ""
	if w.Group != "" {
		prefix = "$share/" + w.Group + "/"
	}
	every := shadowstate.ID{Thing: "+", Name: w.Shadow}
	return prefix + shadowstate.MirrorTopic(w.Mirror, every.Topic(shadowstate.OpUpdate, kind))
}

// subscribeFleet subscribes to the topics w has callbacks for, and returns the
// function that unsubscribes them (once; later calls do nothing).
func (c *Client) subscribeFleet(ctx context.Context, w FleetWatch) (func(context.Context) error, error) {
	var subs []*transport.Subscription
	var once sync.Once
	unsubscribe := func(ctx context.Context) error {
		var errs []error
		once.Do(func() {
			for _, s := range subs {
				errs = append(errs, s.Unsubscribe(ctx))
			}
		})
		return errors.Join(errs...)
	}
	type topic struct {
		kind   shadowstate.Kind
		fn     func(context.Context, shadowstate.ID, []byte, func())
		manual bool // the callback acks
	}
	var topics []topic
	if w.OnDelta != nil || w.OnDeltaAck != nil {
		topics = append(topics, topic{shadowstate.DeltaKind, c.fleetDelta(w), w.OnDeltaAck != nil})
	}
	if w.OnDocuments != nil || w.OnDocumentsAck != nil {
		topics = append(topics, topic{shadowstate.Documents, c.fleetDocuments(w), w.OnDocumentsAck != nil})
	}
	for _, t := range topics {
		filter := w.filter(t.kind)
		opts := []transport.Option{transport.QoS(c.subQoS()), transport.Buffer(8192)}
		if t.manual {
			opts = append(opts, transport.ManualAck())
		}
		s, err := c.conn.Subscribe(ctx, filter, fleetHandler(w, t.kind, t.fn), opts...)
		if err != nil {
			_ = unsubscribe(ctx)
			return nil, fmt.Errorf("watch fleet: subscribe %s: %w", filter, err)
		}
		subs = append(subs, s)
	}
	return unsubscribe, nil
}

// fleetHandler passes fn the messages of the watched shadow on the kind topic, with
// the function that acknowledges each; others are acknowledged here.
func fleetHandler(w FleetWatch, kind shadowstate.Kind, fn func(context.Context, shadowstate.ID, []byte, func())) transport.Handler {
	return transport.HandlerFunc(func(ctx context.Context, m transport.Message) {
		id, _, k, ok := shadowstate.ParseTopic(unmirror(w.Mirror, m.Topic))
		if !ok || k != kind || id.Name != w.Shadow || w.Things != nil && !w.Things(id.Thing) {
			m.Ack()
			return
		}
		fn(ctx, id, m.Payload, m.Ack)
	})
}

// fleetDelta decodes a delta message for w.OnDelta or w.OnDeltaAck.
func (c *Client) fleetDelta(w FleetWatch) func(context.Context, shadowstate.ID, []byte, func()) {
	return func(ctx context.Context, id shadowstate.ID, payload []byte, ack func()) {
		var d shadowstate.DeltaMessage
		if err := shadowstate.Unmarshal(payload, &d); err != nil || d.State == nil {
			ack()
			c.log.Warn("malformed delta message dropped", "shadow", id, "error", err, "payload_bytes", len(payload))
			return
		}
		if w.OnDeltaAck != nil {
			w.OnDeltaAck(ctx, id, &d, ack)
			return
		}
		w.OnDelta(ctx, id, &d)
	}
}

// fleetDocuments decodes a documents message for w.OnDocuments or w.OnDocumentsAck.
func (c *Client) fleetDocuments(w FleetWatch) func(context.Context, shadowstate.ID, []byte, func()) {
	return func(ctx context.Context, id shadowstate.ID, payload []byte, ack func()) {
		var d shadowstate.DocumentsMessage
		var err error
		if w.DocumentsStateOnly {
			err = shadowstate.UnmarshalDocumentsStateOnly(payload, &d)
		} else {
			err = shadowstate.Unmarshal(payload, &d)
		}
		if err != nil {
			ack()
			c.log.Warn("malformed documents message dropped", "shadow", id, "error", err, "payload_bytes", len(payload))
			return
		}
		if w.OnDocumentsAck != nil {
			w.OnDocumentsAck(ctx, id, &d, ack)
			return
		}
		w.OnDocuments(ctx, id, &d)
		c.ownerOf(id.Thing).confirmDocuments(id, &d) // a pool member's watch may receive another's things
	}
}

// stopWatch ends fleet watch n, unsubscribing under the client's Timeout.
func (c *Client) stopWatch(n int, unsubscribe func(context.Context) error) {
	c.mu.Lock()
	delete(c.watches, n)
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.Timeout)
	defer cancel()
	if err := unsubscribe(ctx); err != nil {
		c.log.Warn("stopping a fleet watch: unsubscribe failed", "error", err)
	}
}

// isClosed reports whether Close was called.
func (c *Client) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// unmirror turns a mirror topic back into the shadow topic it copies.
func unmirror(prefix, topic string) string {
	if prefix == "" {
		return topic
	}
	rest, ok := strings.CutPrefix(topic, prefix+"/")
	if !ok {
		return topic
	}
	return "$aws/" + rest
}
