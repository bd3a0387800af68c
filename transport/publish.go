package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/shadowsync/shadowsync/internal/offlinequeue"
)

// Option is a per-call setting for Publish and Subscribe.
type Option func(*options)

type options struct {
	qos       byte
	retain    bool
	noOffline bool
	buffer    int
	manualAck bool
}

// QoS sets the quality of service: 0 (at most once, the default) or 1 (at least
// once). QoS 2 is refused with ErrQoS2, since AWS IoT does not support it.
func QoS(q byte) Option { return func(o *options) { o.qos = q } }

// Retain asks the server to keep the published message for future subscribers.
// Subscribe ignores it.
func Retain() Option { return func(o *options) { o.retain = true } }

// NoOfflineQueue makes Publish fail with ErrOffline instead of queueing while the
// connection is not online, and when the connection is lost before a QoS 1
// acknowledgement. It is for time-sensitive requests, such as shadow requests, that
// are worthless later. Subscribe ignores it.
func NoOfflineQueue() Option { return func(o *options) { o.noOffline = true } }

// Buffer sets how many messages may wait for this subscription's handler before
// further ones are dropped (and logged), overriding Config.HandlerBuffer: a small
// buffer bounds what a stuck handler can hold, a large one absorbs bursts. Publish
// ignores it.
func Buffer(n int) Option { return func(o *options) { o.buffer = n } }

// ManualAck makes the subscription's handler acknowledge each QoS 1 message itself,
// by calling Message.Ack once it has acted on it, instead of the Conn acknowledging
// (MQTT PUBACK) on arrival. A message the server delivered and the client never
// acknowledged is delivered again (flagged Duplicate) when a persistent session
// (Config.PersistentSession) resumes, so a process that dies before acting on a
// message gets it back when it returns. A message several handlers receive is
// acknowledged once every ManualAck handler has acked it and at once when none
// of them uses ManualAck. Publish ignores it.
//
// Acknowledge every message, and soon: a server sends a client only so many
// unacknowledged messages at a time (AWS IoT 100, see docs/transport.md), and the
// other subscriptions of the Conn wait behind them. A message dropped for a full
// handler buffer, one whose handler panicked, and those still waiting when the
// subscription is removed are acknowledged by the Conn; those waiting when the
// Conn closes are not, so a persistent session gets them back.
func ManualAck() Option { return func(o *options) { o.manualAck = true } }

func applyOptions(opts []Option) options {
	var o options
	for _, f := range opts {
		f(&o)
	}
	return o
}

// outgoing is a publish, sent now or queued offline.
type outgoing struct {
	topic    string
	payload  []byte
	qos      byte
	retain   bool
	queuedAt time.Time
}

// Publish sends payload to topic. Online, it returns once the message is written
// (QoS 0) or acknowledged (QoS 1), within ctx and Config.OperationTimeout, and after
// waiting for the publish rate cap if needed.
//
// While the connection is down, or being restored, the message joins the offline
// queue and Publish returns nil at once; queued messages are sent in order after the
// next reconnect, before new ones. A full queue with DropNewest refuses the message
// with an error wrapping ErrQueueFull; with DropOldest the message is queued and the
// oldest queued message is dropped and logged. With queueing disabled Publish fails
// with ErrOffline. A QoS 1 message whose connection is lost before its PUBACK is
// queued again (it may then arrive twice, as QoS 1 allows).
func (c *Conn) Publish(ctx context.Context, topic string, payload []byte, opts ...Option) error {
	o := applyOptions(opts)
	if err := validTopic(topic); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	if err := validQoS(o.qos); err != nil {
		return fmt.Errorf("publish %s: %w", topic, err)
	}
	p := &outgoing{topic: topic, payload: bytes.Clone(payload), qos: o.qos, retain: o.retain}

	c.mu.Lock()
	switch c.state {
	case stClosed:
		c.mu.Unlock()
		return ErrClosed
	case stOnline:
		sess := c.sess
		c.mu.Unlock()
		err := c.send(ctx, sess, p)
		if errors.Is(err, errLost) {
			if o.noOffline {
				return fmt.Errorf("publish %s: %w: connection lost before the acknowledgement", topic, ErrOffline)
			}
			return c.enqueue(p)
		}
		if err != nil {
			return fmt.Errorf("publish %s: %w", topic, err)
		}
		return nil
	}
	defer c.mu.Unlock()
	if o.noOffline {
		return fmt.Errorf("publish %s: %w (not queued: NoOfflineQueue)", topic, ErrOffline)
	}
	return c.enqueueLocked(p)
}

// enqueue queues p after its connection was lost under it.
func (c *Conn) enqueue(p *outgoing) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == stOnline {
		// A new session came up meanwhile; the queue is empty, so p goes at its head.
		c.log.Debug("publish interrupted by a reconnect; queued", "topic", p.topic)
	}
	return c.enqueueLocked(p)
}

func (c *Conn) enqueueLocked(p *outgoing) error {
	if c.state == stClosed {
		return ErrClosed
	}
	if c.offline.Size() == offlinequeue.Disabled {
		return fmt.Errorf("publish %s: %w (offline queueing is disabled)", p.topic, ErrOffline)
	}
	p.queuedAt = time.Now()
	evicted, dropped, err := c.offline.Push(p)
	if err != nil {
		return fmt.Errorf("publish %s while offline: %w", p.topic, err)
	}
	if dropped {
		c.log.Warn("offline queue full: dropped the oldest queued publish to make room (DropOldest)",
			"dropped_topic", evicted.topic, "dropped_queued_at", evicted.queuedAt, "new_topic", p.topic)
	}
	if c.state == stOnline {
		// Only reachable from enqueue: hand the message to a drain pass.
		c.setStateLocked(stDraining)
		c.background.Go(c.drainLate)
	}
	return nil
}

// drainLate sends what enqueue put back while online. It runs rarely: only when a
// publish lost its connection and the next session was already online.
func (c *Conn) drainLate() {
	c.mu.Lock()
	sess := c.sess
	c.mu.Unlock()
	if sess != nil {
		_ = c.drain(c.life, sess)
	}
}

// send publishes p on sess and waits for it to complete.
func (c *Conn) send(ctx context.Context, sess *session, p *outgoing) error {
	if err := c.limit.wait(ctx); err != nil {
		return err
	}
	tok, err := c.handOff(ctx, sess, func() paho.Token { return sess.cli.Publish(p.topic, p.qos, p.retain, p.payload) })
	if err != nil {
		return err
	}
	c.sent.Add(1)
	return c.await(ctx, sess, tok)
}

// handOff gives a PUBLISH to paho and returns its token. paho's Publish waits until
// its writer takes the packet, for up to its write timeout (OperationTimeout) and
// whatever ctx says: a peer that stopped reading fills the socket, and a connection
// being torn down has no writer at all. So the call runs on a goroutine of its own,
// and the caller stops waiting at ctx's end, at the session's loss (errLost) or at
// Close. A publish given up on that way may still be written once paho's wait ends,
// as a publish whose acknowledgement was given up on may; Close waits for it.
func (c *Conn) handOff(ctx context.Context, sess *session, call func() paho.Token) (paho.Token, error) {
	got := make(chan paho.Token, 1)
	c.background.Go(func() { got <- call() })
	select {
	case tok := <-got:
		return tok, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-sess.lost:
		return nil, fmt.Errorf("%w: %w", errLost, sess.lostErr)
	case <-c.life.Done():
		return nil, ErrClosed
	}
}

// drain sends the offline queue on sess at DrainRate, oldest first, and goes online
// when it is empty. Publishes made meanwhile join its tail. An item whose connection
// is lost is put back at the head for the next session.
func (c *Conn) drain(ctx context.Context, sess *session) error {
	var sent int
	for {
		c.mu.Lock()
		if c.sess != sess {
			c.mu.Unlock()
			return errLost
		}
		p, ok := c.offline.Pop()
		if !ok {
			online := c.setStateLocked(stOnline)
			c.everUp = true
			c.mu.Unlock()
			if !online {
				return ErrClosed
			}
			if sent > 0 {
				c.log.Info("offline queue drained", "sent", sent)
			}
			return nil
		}
		c.mu.Unlock()

		if sent > 0 && c.s.drainGap > 0 {
			t := time.NewTimer(c.s.drainGap)
			select {
			case <-t.C:
			case <-sess.lost:
				t.Stop()
				c.offline.Requeue(p)
				return sess.lostErr
			case <-ctx.Done():
				t.Stop()
				c.offline.Requeue(p)
				return ctx.Err()
			}
		}
		err := c.send(ctx, sess, p)
		switch {
		case errors.Is(err, errLost) || ctx.Err() != nil:
			c.offline.Requeue(p)
			return err
		case err != nil:
			c.log.Error("queued publish failed; dropped", "topic", p.topic, "queued_at", p.queuedAt, "error", err)
		default:
			sent++
		}
	}
}

// limiter spaces outgoing publishes to a rate, with a burst of 90 % of one second's
// worth. A broker that enforces the same cap (AWS IoT) counts publishes as they
// arrive, and the way there bunches them up now and then: the 10 % kept back lets
// them arrive up to a tenth of a second closer together than they left without going
// over (localiot with AWS's 100 per second dropped publishes of a client capped at
// 100 with a full second's burst). It is safe for concurrent use.
type limiter struct {
	gap   time.Duration // 0 means no limit
	burst time.Duration
	log   *slog.Logger

	mu     sync.Mutex
	next   time.Time // earliest send time of the next publish, minus the burst
	logged time.Time // when a throttled publish was last logged

	throttled atomic.Int64 // publishes the cap delayed
	waited    atomic.Int64 // their total delay, in nanoseconds
}

// burstShare is the share of one second's publishes the limiter lets through at once.
const burstShare = 0.9

func newLimiter(gap time.Duration, rate float64, log *slog.Logger) *limiter {
	l := &limiter{gap: gap, log: log}
	if gap > 0 {
		l.burst = time.Duration(max(rate*burstShare, 1)) * gap
	}
	return l
}

// wait blocks until a publish may be sent or ctx ends.
func (l *limiter) wait(ctx context.Context) error {
	if l.gap == 0 {
		return nil
	}
	l.mu.Lock()
	now := time.Now()
	if floor := now.Add(-l.burst); l.next.Before(floor) {
		l.next = floor
	}
	at := l.next
	l.next = l.next.Add(l.gap)
	d := at.Sub(now)
	logIt := d > 0 && now.Sub(l.logged) >= time.Second
	if logIt {
		l.logged = now
	}
	l.mu.Unlock()
	if d <= 0 {
		return nil
	}
	l.throttled.Add(1)
	l.waited.Add(int64(d))
	if logIt { // at most once a second: a throttled connection publishes a lot
		l.log.Debug("publish delayed by MaxPublishRate", "delay", d, "rate_per_second", float64(time.Second)/float64(l.gap), "throttled_so_far", l.throttled.Load())
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
