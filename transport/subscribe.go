package transport

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"slices"
	"strings"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// Subscribe registers h for messages matching filter, which may use the + and #
// wildcards and the $share/<group>/<filter> form. Any number of handlers may share a
// filter; each gets every matching message on its own goroutine (see Handler). The
// QoS option (0 or 1, default 0) is the QoS asked from the server.
//
// When online, Subscribe waits for the SUBACK, within ctx and
// Config.OperationTimeout, and fails with ErrSubscribeRefused if the server refuses.
// When offline, the subscription is recorded and made on the next connection
// (before queued publishes are sent); nil is returned at once. A new filter beyond
// Config.MaxSubscriptions fails with ErrTooManySubscriptions.
func (c *Conn) Subscribe(ctx context.Context, filter string, h Handler, opts ...Option) (*Subscription, error) {
	o := applyOptions(opts)
	if err := validFilter(filter); err != nil {
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	if err := validQoS(o.qos); err != nil {
		return nil, fmt.Errorf("subscribe %s: %w", filter, err)
	}
	if h == nil {
		return nil, fmt.Errorf("subscribe %s: nil handler", filter)
	}
	c.wireMu.Lock()
	defer c.wireMu.Unlock()
	sub := &Subscription{
		conn: c, filter: filter, qos: o.qos, h: h, manual: o.manualAck,
		box:  newMailbox(cmp.Or(max(o.buffer, 0), c.s.HandlerBuffer)),
		quit: make(chan struct{}),
		done: make(chan struct{}),
	}

	c.mu.Lock()
	if c.state == stClosed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	if c.s.MaxSubscriptions > 0 && !c.router.has(filter) && c.router.count() >= c.s.MaxSubscriptions {
		c.mu.Unlock()
		return nil, fmt.Errorf("subscribe %s: %d filters held: %w", filter, c.s.MaxSubscriptions, ErrTooManySubscriptions)
	}
	isNew, raised := c.router.add(sub)
	c.startHandler(sub)
	sess := c.sess
	send := (isNew || raised) && (c.state == stDraining || c.state == stOnline)
	c.mu.Unlock()

	if !send {
		return sub, nil
	}
	err := c.subscribeWire(ctx, sess, map[string]byte{filter: max(o.qos, c.routeQoS(filter))})
	switch {
	case err == nil, errors.Is(err, errLost):
		return sub, nil // when lost, the next session restores it
	}
	found, empty := c.router.remove(sub)
	sub.halt()
	if found && empty && !errors.Is(err, ErrSubscribeRefused) {
		c.withdraw(sess, filter)
	}
	return nil, fmt.Errorf("subscribe %s: %w", filter, err)
}

// withdraw sends an UNSUBSCRIBE for a filter whose SUBSCRIBE went unanswered (the
// caller gave up or the acknowledgement timed out): the server may still grant it,
// and would then send messages nobody routes. It does not wait for the UNSUBACK;
// the caller holds wireMu, so the UNSUBSCRIBE goes out before any later SUBSCRIBE of
// the same filter and the server handles them in that order.
func (c *Conn) withdraw(sess *session, filter string) {
	c.hold(filter, 0) // the server may have granted it; held until the UNSUBACK
	tok := sess.cli.Unsubscribe(filter)
	c.background.Go(func() {
		select {
		case <-tok.Done():
			if err := tok.Error(); err != nil {
				c.log.Debug("withdrawing an unanswered subscription failed", "filter", filter, "error", err)
			} else {
				c.release(filter)
			}
		case <-sess.lost:
		case <-time.After(c.s.OperationTimeout):
			c.log.Debug("withdrawing an unanswered subscription got no UNSUBACK", "filter", filter)
		case <-c.life.Done():
		}
	})
}

// routeQoS returns the QoS held for filter.
func (c *Conn) routeQoS(filter string) byte {
	qos, _ := c.router.filters()
	return qos[filter]
}

// Unsubscribe removes every handler of each filter and unsubscribes them from the
// server, waiting for the UNSUBACK when online (within ctx and
// Config.OperationTimeout). Offline, the filters are simply not restored.
func (c *Conn) Unsubscribe(ctx context.Context, filters ...string) error {
	c.wireMu.Lock()
	defer c.wireMu.Unlock()
	c.mu.Lock()
	if c.state == stClosed {
		c.mu.Unlock()
		return ErrClosed
	}
	var gone []string
	for _, f := range filters {
		subs := c.router.removeFilter(f)
		for _, s := range subs {
			s.halt()
		}
		if len(subs) > 0 {
			gone = append(gone, f)
		}
	}
	sess := c.sess
	send := len(gone) > 0 && (c.state == stDraining || c.state == stOnline)
	c.mu.Unlock()
	if !send {
		return nil
	}
	return c.unsubscribeWire(ctx, sess, gone)
}

// removeSubscription removes one handler, unsubscribing its filter when it was the last.
func (c *Conn) removeSubscription(ctx context.Context, s *Subscription) error {
	c.wireMu.Lock()
	defer c.wireMu.Unlock()
	c.mu.Lock()
	if c.state == stClosed {
		c.mu.Unlock()
		return ErrClosed
	}
	found, empty := c.router.remove(s)
	s.halt()
	sess := c.sess
	send := found && empty && (c.state == stDraining || c.state == stOnline)
	c.mu.Unlock()
	if !send {
		return nil
	}
	return c.unsubscribeWire(ctx, sess, []string{s.filter})
}

// subscribeWire sends SUBSCRIBE packets of at most MaxFiltersPerSubscribe filters each
// and waits for their SUBACKs. Refused filters are reported with ErrSubscribeRefused.
func (c *Conn) subscribeWire(ctx context.Context, sess *session, filters map[string]byte) error {
	names := slices.Sorted(maps.Keys(filters))
	var refused []string
	for batch := range slices.Chunk(names, c.s.MaxFiltersPerSubscribe) {
		m := make(map[string]byte, len(batch))
		for _, f := range batch {
			m[f] = filters[f]
		}
		for attempt := 1; len(m) > 0; attempt++ {
			tok := sess.cli.SubscribeMultiple(m, nil)
			if err := c.await(ctx, sess, tok); err != nil {
				return err
			}
			st, ok := tok.(*paho.SubscribeToken)
			if !ok {
				break
			}
			again := make(map[string]byte)
			for f, code := range st.Result() {
				switch {
				case code <= 2: // 0, 1 and 2 are granted QoS levels
					c.hold(f, m[f])
				case code == codePacketIDInUse && attempt < packetIDRetries:
					again[f] = m[f]
				default: // anything else refuses
					refused = append(refused, fmt.Sprintf("%s (code %#x)", f, code))
				}
			}
			m = again
		}
	}
	if len(refused) > 0 {
		slices.Sort(refused)
		return fmt.Errorf("%w: %q", ErrSubscribeRefused, refused)
	}
	return nil
}

// A SUBACK code of 0x91, "packet identifier in use" (MQTT 5's, not 3.1.1's), says
// the broker confused the SUBSCRIBE's packet identifier with one of its own
// deliveries in flight (mochi-mqtt keeps both in one table); the filters are asked
// for again, under a new identifier, up to packetIDRetries times in all.
const (
	codePacketIDInUse = 0x91
	packetIDRetries   = 3
)

// unsubscribeWire sends UNSUBSCRIBE for filters and waits for the UNSUBACK.
func (c *Conn) unsubscribeWire(ctx context.Context, sess *session, filters []string) error {
	err := c.await(ctx, sess, sess.cli.Unsubscribe(filters...))
	if errors.Is(err, errLost) {
		// A clean session forgets them anyway; a resumed persistent session still
		// holds them, and resubscribe unsubscribes them then.
		return nil
	}
	if err != nil {
		return fmt.Errorf("unsubscribe %q: %w", filters, err)
	}
	c.release(filters...)
	return nil
}

// hold records that the server granted filter at qos, for a persistent session.
func (c *Conn) hold(filter string, qos byte) {
	if !c.s.PersistentSession {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.held == nil {
		c.held = make(map[string]byte)
	}
	c.held[filter] = qos
}

// release records that the server acknowledged removing filters.
func (c *Conn) release(filters ...string) {
	if !c.s.PersistentSession {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range filters {
		delete(c.held, f)
	}
}

// resumed prepares resubscribe on a session: for a persistent session the server
// kept, it unsubscribes what the client dropped while offline and returns what the
// server still holds, which need not be subscribed again; otherwise the server holds
// nothing and it returns an empty map.
func (c *Conn) resumed(ctx context.Context, sess *session) (map[string]byte, error) {
	c.mu.Lock()
	kept := c.held
	c.held = nil
	c.mu.Unlock()
	done := make(map[string]byte)
	if !sess.present {
		return done, nil
	}
	all, _ := c.router.filters()
	var stale []string
	for f, q := range kept {
		if _, ok := all[f]; ok {
			done[f] = q
			c.hold(f, q)
		} else {
			stale = append(stale, f)
		}
	}
	c.log.Info("persistent session resumed: the server kept its subscriptions", "kept", len(done), "unsubscribing", len(stale))
	if len(stale) > 0 {
		slices.Sort(stale)
		for _, f := range stale {
			c.hold(f, kept[f]) // held until the UNSUBACK says otherwise
		}
		if err := c.unsubscribeWire(ctx, sess, stale); err != nil {
			return nil, err
		}
	}
	return done, nil
}

// resubscribe makes every registered filter on a new session, in batches, then
// moves to draining. Filters added while it runs are made too before it returns, and
// filters removed while it runs (Unsubscribe sends nothing before the session is
// restored) are unsubscribed again if it had already made them: left on the server,
// they would bring messages nobody routes for the whole session. A filter the server
// refuses is logged and kept, to be tried on the next connection.
func (c *Conn) resubscribe(ctx context.Context, sess *session) error {
	done, err := c.resumed(ctx, sess)
	if err != nil {
		return err
	}
	for {
		all, version := c.router.filters()
		var stale []string
		for f := range done {
			if _, ok := all[f]; !ok {
				stale = append(stale, f)
			}
		}
		if len(stale) > 0 {
			slices.Sort(stale)
			for _, f := range stale {
				c.hold(f, done[f]) // held until the UNSUBACK says otherwise
				delete(done, f)
			}
			if err := c.unsubscribeWire(ctx, sess, stale); err != nil {
				return err
			}
			c.log.Debug("resubscribe: unsubscribed filters removed meanwhile", "filters", len(stale))
		}
		todo := make(map[string]byte)
		for f, q := range all {
			if dq, ok := done[f]; !ok || dq < q {
				todo[f] = q
			}
		}
		if len(todo) > 0 {
			err := c.subscribeWire(ctx, sess, todo)
			switch {
			case errors.Is(err, ErrSubscribeRefused):
				c.log.Error("resubscribe: server refused filters", "error", err)
			case err != nil:
				return err
			}
			maps.Copy(done, todo)
			c.log.Debug("resubscribed", "filters", len(todo))
		}
		c.mu.Lock()
		_, now := c.router.filters()
		if now == version {
			ok := c.setStateLocked(stDraining)
			c.mu.Unlock()
			if !ok {
				return ErrClosed
			}
			return nil
		}
		c.mu.Unlock()
	}
}

// await waits for a paho token, the session's loss (errLost) or ctx, bounded by
// Config.OperationTimeout (ErrTimeout).
func (c *Conn) await(ctx context.Context, sess *session, tok paho.Token) error {
	timer := time.NewTimer(c.s.OperationTimeout)
	defer timer.Stop()
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			select {
			case <-sess.lost:
				return fmt.Errorf("%w: %w", errLost, err)
			default:
			}
			if connectionGone(err) {
				// The socket failed before the session's loss was signalled.
				return fmt.Errorf("%w: %w", errLost, err)
			}
			return err
		}
		return nil
	case <-sess.lost:
		return fmt.Errorf("%w: %w", errLost, sess.lostErr)
	case <-timer.C:
		return fmt.Errorf("%w: no acknowledgement within %v", ErrTimeout, c.s.OperationTimeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// connectionGone reports whether a paho token's error means the connection under it
// is gone (closed, reset, or paho no longer connected) rather than that the server
// refused or the request was bad.
func connectionGone(err error) bool {
	var op *net.OpError
	return errors.Is(err, paho.ErrNotConnected) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, io.EOF) || errors.As(err, &op) ||
		// paho fails the tokens in flight so when it loses the connection, with no
		// sentinel error to match.
		strings.HasPrefix(err.Error(), "connection lost before")
}
