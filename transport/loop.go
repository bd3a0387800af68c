package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// kickedAfter is how many connections in a row, each closed by the server before it
// was stable, make the loop say loudly that the client ID is probably shared.
const kickedAfter = 3

// session is one MQTT connection: a paho client used for exactly one network
// connection (paho's own reconnect is off; a lost session is never reused).
type session struct {
	cli         paho.Client
	creds       *aws.Credentials
	connectedAt time.Time
	present     bool // the server resumed a persistent session (CONNACK session present)

	lost     chan struct{} // closed once the connection is lost
	lostOnce sync.Once
	lostErr  error // set before lost is closed
}

func (s *session) markLost(err error) {
	s.lostOnce.Do(func() {
		if err == nil {
			err = errLost
		}
		s.lostErr = err
		close(s.lost)
	})
}

// run is the connection loop, the one goroutine that owns the connection's life: it
// connects, restores, waits for the loss, backs off and connects again until ctx ends.
func (c *Conn) run(ctx context.Context) {
	attempt := 0 // backoff exponent; reset once a connection has stayed up StableAfter
	wait := false
	kicked := 0
	for {
		if wait {
			d := c.s.Backoff(attempt)
			attempt++
			c.log.Info("reconnecting after backoff", "wait", d, "attempt", attempt)
			select {
			case <-c.clock.After(d):
			case <-ctx.Done():
				return
			}
		}
		wait = true
		sess, err := c.connect(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			c.attemptFailed(err)
			continue
		}
		c.log.Info("connected", "endpoint", c.s.ep.String())
		err = c.serve(ctx, sess)
		c.endSession(sess, err, ctx.Err() != nil)
		if ctx.Err() != nil {
			return
		}
		up := c.clock.Now().Sub(sess.connectedAt)
		if up >= c.s.StableAfter {
			attempt = 0
		}
		switch {
		case errors.Is(err, ErrPlannedReconnect):
			wait = false // the old connection was fine: replace it at once
		case errors.Is(err, ErrClosedByServer) && up < c.s.StableAfter:
			kicked++
			if kicked >= kickedAfter {
				c.log.Error("the server keeps closing the connection soon after it is made: another client is probably connected with the same client ID (AWS IoT drops the older connection), or a policy is being violated",
					"client_id", c.s.ClientID, "times", kicked)
			}
		default:
			kicked = 0
		}
	}
}

// attemptFailed records a failed connect attempt.
func (c *Conn) attemptFailed(err error) {
	c.log.Warn("connect attempt failed", "error", err)
	c.mu.Lock()
	c.lastErr = err
	everUp := c.everUp
	c.mu.Unlock()
	if permanent(err) && !everUp {
		c.failOnce.Do(func() { close(c.failed) })
	}
}

// connect makes one connect attempt, bounded by ConnectTimeout: dial, then CONNECT
// and CONNACK through a fresh paho client.
func (c *Conn) connect(ctx context.Context) (*session, error) {
	actx, cancel := context.WithTimeout(ctx, c.s.ConnectTimeout)
	defer cancel()
	d, err := c.dialer.dial(actx)
	if err != nil {
		if actx.Err() != nil && ctx.Err() == nil {
			return nil, fmt.Errorf("%w: connect to %s took longer than %v: %w", ErrTimeout, c.s.ep, c.s.ConnectTimeout, err)
		}
		return nil, err
	}
	sess := &session{creds: d.creds, lost: make(chan struct{})}
	cli := paho.NewClient(c.pahoOptions(sess, d.conn))
	tok := cli.Connect()
	select {
	case <-tok.Done():
	case <-actx.Done():
		_ = d.conn.Close() // unblocks the CONNACK read
		<-tok.Done()
		if tok.Error() == nil {
			// The CONNACK won the race against the deadline: paho started its workers
			// on a connection closed under them, and, not yet connected when it saw the
			// close, would leave them running. Disconnect stops them.
			cli.Disconnect(0)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: no CONNACK from %s within %v", ErrTimeout, c.s.ep, c.s.ConnectTimeout)
	}
	if err := tok.Error(); err != nil {
		_ = d.conn.Close()
		return nil, connectError(tok, err, c.s.ep)
	}
	sess.cli = cli
	sess.connectedAt = c.clock.Now()
	if ct, ok := tok.(*paho.ConnectToken); ok && c.s.PersistentSession {
		sess.present = ct.SessionPresent()
	}
	return sess, nil
}

// connectError explains a refused CONNECT.
func connectError(tok paho.Token, err error, ep endpoint) error {
	rc := byte(packets.ErrNetworkError)
	if ct, ok := tok.(*paho.ConnectToken); ok {
		rc = ct.ReturnCode()
	}
	switch rc {
	case packets.ErrRefusedIDRejected:
		return fmt.Errorf("%w: CONNACK from %s: %w", ErrClientIDRejected, ep, err)
	case packets.ErrRefusedBadUsernameOrPassword, packets.ErrRefusedNotAuthorised, 7: // AWS answers 7 for not authorized
		return fmt.Errorf("%w: CONNACK from %s: %w (check the certificate's or credentials' policy, the client ID and user name)", ErrNotAuthorized, ep, err)
	}
	return fmt.Errorf("connect to %s: %w", ep, classifyTLS(err))
}

// pahoOptions configures a paho client for one network connection, conn, already
// dialed: no paho reconnect, a clean session unless Config.PersistentSession, MQTT
// 3.1.1.
func (c *Conn) pahoOptions(sess *session, conn net.Conn) *paho.ClientOptions {
	s := c.s
	o := paho.NewClientOptions().
		AddBroker("tcp://" + s.ep.addr()). // never dialed: CustomOpenConnectionFn hands over conn
		SetClientID(s.ClientID).
		SetUsername(s.username).
		SetPassword(string(s.Password)).
		SetCleanSession(!s.PersistentSession).
		SetProtocolVersion(4).
		SetOrderMatters(true). // dispatch only enqueues, so paho's goroutine never waits on a handler
		SetKeepAlive(s.keepAlive).
		SetPingTimeout(s.keepAlive).
		SetConnectTimeout(s.ConnectTimeout).
		SetWriteTimeout(s.OperationTimeout).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetResumeSubs(false).
		// The router acknowledges each message: on arrival, or for a handler
		// subscribed with ManualAck once it has acted on the message.
		SetAutoAckDisabled(true).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) {
			c.router.dispatch(Message{
				Topic:     m.Topic(),
				Payload:   bytes.Clone(m.Payload()),
				QoS:       m.Qos(),
				Retained:  m.Retained(),
				Duplicate: m.Duplicate(),
			}, sessionAck(sess, m))
		}).
		SetConnectionLostHandler(func(_ paho.Client, err error) { sess.markLost(err) }).
		SetCustomOpenConnectionFn(func(*url.URL, paho.ClientOptions) (net.Conn, error) { return conn, nil })
	if w := s.Will; w != nil {
		o.SetBinaryWill(w.Topic, w.Payload, w.QoS, w.Retain)
	}
	return o
}

// sessionAck returns the function that acknowledges m, received over sess, or nil
// for QoS 0, which has no acknowledgement. Once sess is lost the function does
// nothing: paho would drop the PUBACK anyway (it belongs to that connection's packet
// identifiers), and a resumed persistent session delivers m again.
func sessionAck(sess *session, m paho.Message) func() {
	if m.Qos() == 0 {
		return nil
	}
	return func() {
		select {
		case <-sess.lost:
		default:
			m.Ack()
		}
	}
}

// serve restores a new session (resubscribe, then drain), reports online, and waits
// until the session is lost, a planned reconnect is due, or ctx ends. It returns why
// the session ended.
func (c *Conn) serve(ctx context.Context, sess *session) error {
	c.mu.Lock()
	if !c.setStateLocked(stRestoring) {
		c.mu.Unlock()
		return ErrClosed
	}
	c.sess = sess
	c.mu.Unlock()

	if err := c.resubscribe(ctx, sess); err != nil {
		return err
	}
	if err := c.drain(ctx, sess); err != nil {
		return err
	}
	if c.s.OnOnline != nil {
		c.events.post(c.s.OnOnline)
	}
	c.log.Info("online")

	var planned <-chan time.Time
	maxAge := time.Duration(-1)
	if c.s.ep.websocket() {
		maxAge = c.s.MaxConnectionAge
	}
	if at, ok := plannedReconnect(sess.connectedAt, sess.creds, maxAge); ok {
		d := at.Sub(c.clock.Now())
		c.log.Debug("planned reconnect", "in", d)
		planned = c.clock.After(max(d, 0))
	}
	select {
	case <-sess.lost:
		return sess.lostErr
	case <-planned:
		c.log.Info("planned reconnect: credentials expire soon or the connection nears AWS's 24 h limit")
		return ErrPlannedReconnect
	case <-ctx.Done():
		return ctx.Err()
	}
}

// endSession takes the session down: state down (publishes queue again), the paho
// client disconnected, OnOffline told when it had been online.
func (c *Conn) endSession(sess *session, cause error, closing bool) {
	sess.markLost(cause) // also for a planned reconnect or a Close: SessionLost closes
	c.mu.Lock()
	wasOnline := c.state == stOnline
	if c.sess == sess {
		c.sess = nil
	}
	c.setStateLocked(stDown) // sess and state change together: online always has a session
	if !closing {
		c.lastErr = cause
	}
	c.mu.Unlock()

	quiesce := uint(min(c.s.ConnectTimeout, time.Second) / time.Millisecond)
	sess.cli.Disconnect(quiesce) // sends DISCONNECT if still connected, so no Last Will
	sess.markLost(errLost)
	if closing {
		return
	}
	c.log.Warn("connection lost", "error", cause)
	if wasOnline && c.s.OnOffline != nil {
		c.events.post(func() { c.s.OnOffline(cause) })
	}
}
