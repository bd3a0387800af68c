package transport

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Message is a PUBLISH received from the server. Payload is shared by every handler
// the message is delivered to: read it, do not modify it.
type Message struct {
	Topic     string
	Payload   []byte
	QoS       byte
	Retained  bool
	Duplicate bool

	ack *ackHandle // the handler's share of the acknowledgement; nil unless ManualAck
}

// Handler handles messages for a subscription. HandleMessage runs on the
// subscription's own goroutine, one message at a time in arrival order, with a ctx
// that ends when the Conn closes; it may call any Conn method, including blocking
// ones. A panic is recovered and logged.
type Handler interface {
	HandleMessage(ctx context.Context, m Message)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, m Message)

// HandleMessage calls f(ctx, m).
func (f HandlerFunc) HandleMessage(ctx context.Context, m Message) { f(ctx, m) }

// Subscription is one handler registered for a topic filter by Conn.Subscribe. Its
// methods are safe for concurrent use.
type Subscription struct {
	conn   *Conn
	filter string
	qos    byte
	h      Handler
	manual bool // the handler acknowledges each message itself (ManualAck)

	box     *mailbox      // messages waiting for the handler
	dropped atomic.Uint64 // messages dropped because box was full
	quit    chan struct{} // closed to stop the goroutine
	done    chan struct{} // closed when the goroutine has returned
	stop    sync.Once
}

// Filter returns the topic filter the subscription was made with.
func (s *Subscription) Filter() string { return s.filter }

// Dropped returns how many messages for this handler were dropped because its buffer
// (Config.HandlerBuffer, or the Buffer option) was full: the handler is too slow for
// what arrives. Each drop is also logged.
func (s *Subscription) Dropped() uint64 { return s.dropped.Load() }

// Unsubscribe removes this handler. When it was the filter's last handler, the filter
// is unsubscribed from the server (at once when online, else simply not restored).
func (s *Subscription) Unsubscribe(ctx context.Context) error {
	return s.conn.removeSubscription(ctx, s)
}

// run calls the handler for each message until quit or ctx ends.
func (s *Subscription) run(ctx context.Context, log *slog.Logger) {
	defer close(s.done)
	for {
		select {
		case <-s.quit:
			s.ackLeft(ctx)
			return
		case <-ctx.Done():
			return
		case <-s.box.ready:
			for {
				select {
				case <-s.quit:
					s.ackLeft(ctx)
					return
				default:
				}
				m, ok := s.box.take()
				if !ok {
					break
				}
				s.call(ctx, m, log)
			}
		}
	}
}

func (s *Subscription) call(ctx context.Context, m Message, log *slog.Logger) {
	defer func() {
		if r := recover(); r != nil {
			log.Error("message handler panicked", "filter", s.filter, "topic", m.Topic, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			m.Ack() // it will not be acked now; a redelivery would panic again
		}
	}()
	s.h.HandleMessage(ctx, m)
}

// ackLeft acknowledges the messages still waiting for a ManualAck handler that is
// removed while the Conn lives on: nobody will act on them, and unacknowledged they
// would hold the server's in-flight window until the next connection. When the Conn
// is closing (ctx ended) they stay unacknowledged, for a persistent session to
// deliver again.
func (s *Subscription) ackLeft(ctx context.Context) {
	if !s.manual || ctx.Err() != nil {
		return
	}
	for {
		m, ok := s.box.take()
		if !ok {
			return
		}
		m.Ack()
	}
}

func (s *Subscription) halt() { s.stop.Do(func() { close(s.quit) }) }

// route is every handler of one topic filter.
type route struct {
	filter string
	wild   bool // the filter has a wildcard or is shared: it must be matched, not looked up
	qos    byte // the highest QoS asked for this filter
	subs   []*Subscription
}

// router holds the subscriptions and delivers incoming messages to them. Dispatch
// never blocks: each subscription has a buffer, and a message that finds its buffer
// full is dropped and logged, so a slow handler costs only its own messages. It is
// safe for concurrent use.
type router struct {
	log *slog.Logger
	// unhandled receives the messages no route matches (Config.Unhandled); nil drops
	// them. Set before the Conn is used, never changed.
	unhandled *Subscription
	// dropped counts the messages dropped for a full handler buffer, over the Conn's
	// life (Conn.Dropped).
	dropped atomic.Uint64
	// received counts the PUBLISH messages routed, over the Conn's life
	// (Conn.Received).
	received atomic.Uint64

	mu      sync.RWMutex
	routes  map[string]*route // by filter
	wild    []*route          // the routes of wildcard and shared filters, matched one by one
	version uint64            // bumped on every change of filters or their QoS
}

// add registers s; isNew says whether its filter had no handler before, and raised
// whether the filter's QoS went up (both need a SUBSCRIBE when online).
func (r *router) add(s *Subscription) (isNew, raised bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.routes == nil {
		r.routes = make(map[string]*route)
	}
	rt := r.routes[s.filter]
	if rt == nil {
		rt = &route{filter: s.filter, qos: s.qos, wild: strings.ContainsAny(s.filter, "+#") || strings.HasPrefix(s.filter, "$share/")}
		r.routes[s.filter] = rt
		if rt.wild {
			r.wild = append(r.wild, rt)
		}
		isNew = true
		r.version++
	} else if s.qos > rt.qos {
		rt.qos, raised = s.qos, true
		r.version++
	}
	rt.subs = append(rt.subs, s)
	return isNew, raised
}

// remove unregisters s; empty says whether its filter has no handler left (and is gone).
func (r *router) remove(s *Subscription) (found, empty bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rt := r.routes[s.filter]
	if rt == nil {
		return false, false
	}
	i := slices.Index(rt.subs, s)
	if i < 0 {
		return false, false
	}
	rt.subs = slices.Delete(rt.subs, i, i+1)
	if len(rt.subs) == 0 {
		r.drop(rt)
		return true, true
	}
	return true, false
}

// removeFilter unregisters every handler of filter and returns them.
func (r *router) removeFilter(filter string) []*Subscription {
	r.mu.Lock()
	defer r.mu.Unlock()
	rt := r.routes[filter]
	if rt == nil {
		return nil
	}
	r.drop(rt)
	return rt.subs
}

// drop removes the route of a filter. The caller holds r.mu.
func (r *router) drop(rt *route) {
	delete(r.routes, rt.filter)
	if rt.wild {
		r.wild = slices.DeleteFunc(r.wild, func(w *route) bool { return w == rt })
	}
	r.version++
}

// removeAll unregisters everything and returns every subscription.
func (r *router) removeAll() []*Subscription {
	r.mu.Lock()
	defer r.mu.Unlock()
	var all []*Subscription
	for _, rt := range r.routes {
		all = append(all, rt.subs...)
	}
	r.routes, r.wild = nil, nil
	r.version++
	return all
}

// has reports whether filter has a handler.
func (r *router) has(filter string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.routes[filter] != nil
}

// count returns the number of filters.
func (r *router) count() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.routes)
}

// filters returns each filter with its QoS, sorted by filter, and the version they
// belong to.
func (r *router) filters() (map[string]byte, uint64) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make(map[string]byte, len(r.routes))
	for f, rt := range r.routes {
		out[f] = rt.qos
	}
	return out, r.version
}

// dispatch hands m to every handler whose filter matches its topic, without blocking.
// A filter without wildcards is found by a map lookup; only wildcard and shared
// filters are matched one by one, so thousands of exact filters cost nothing.
//
// ack, nil for QoS 0, sends the message's acknowledgement: at once when no ManualAck
// handler took the message, else once each of them has acked it.
func (r *router) dispatch(m Message, ack func()) {
	r.received.Add(1)
	var p *pendingAck
	if ack != nil {
		p = newPendingAck(ack)
		defer p.release() // the router's hold: the last holder sends the ack
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	matched := false
	if rt := r.routes[m.Topic]; rt != nil && !rt.wild {
		matched = true
		r.deliver(rt, m, p)
	}
	for _, rt := range r.wild {
		if matchFilter(rt.filter, m.Topic) {
			matched = true
			r.deliver(rt, m, p)
		}
	}
	if !matched {
		if r.unhandled == nil {
			r.log.Debug("message matches no subscription", "topic", m.Topic)
			return
		}
		if !r.unhandled.box.put(m) {
			r.unhandled.dropped.Add(1)
			r.dropped.Add(1)
			r.log.Warn("unhandled-message handler too slow, message dropped", "topic", m.Topic, "buffer", r.unhandled.box.limit)
		}
	}
}

// deliver puts m in the buffer of every handler of rt, dropping it (and logging)
// for a handler whose buffer is full. A ManualAck handler gets a hold on p, the
// message's acknowledgement, released when it acks; a dropped message's is released
// at once.
func (r *router) deliver(rt *route, m Message, p *pendingAck) {
	for _, s := range rt.subs {
		m.ack = nil
		if s.manual && p != nil {
			m.ack = p.hold()
		}
		if !s.box.put(m) {
			m.Ack()
			s.dropped.Add(1)
			r.dropped.Add(1)
			r.log.Warn("handler too slow, message dropped", "filter", rt.filter, "topic", m.Topic, "buffer", s.box.limit)
		}
	}
}
