package localiot

import (
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/packets"
)

func TestSubscribeLimits(t *testing.T) {
	url := startServer(t, Options{}).Endpoints().Plain

	t.Run("ninth filter in one SUBSCRIBE fails", func(t *testing.T) {
		c := mustConnect(t, url, "nine")
		var filters []string
		for i := range 9 {
			filters = append(filters, fmt.Sprintf("nine/%d", i))
		}
		got := c.subscribe(t, 1, filters...)
		// paho orders a SUBSCRIBE's filters at random, so count: exactly one fails.
		granted, failed := 0, 0
		for _, code := range got {
			switch code {
			case 1:
				granted++
			case 0x80:
				failed++
			}
		}
		if granted != 8 || failed != 1 {
			t.Errorf("SUBACK codes %v, want 8 granted and 1 failure", got)
		}
	})

	t.Run("51st subscription fails", func(t *testing.T) {
		c := mustConnect(t, url, "fifty")
		for i := 0; i < 50; i += 8 {
			var batch []string
			for j := i; j < min(i+8, 50); j++ {
				batch = append(batch, fmt.Sprintf("fifty/%d", j))
			}
			c.mustSubscribe(t, batch...)
		}
		if got := c.subscribe(t, 1, "fifty/50"); got["fifty/50"] != 0x80 {
			t.Errorf("51st subscription: SUBACK %#x, want 0x80", got["fifty/50"])
		}
		// Subscribing again to a filter already held adds no subscription.
		c.mustSubscribe(t, "fifty/0")
	})

	t.Run("QoS 2 subscription fails", func(t *testing.T) {
		c := mustConnect(t, url, "qos2sub")
		if got := c.subscribe(t, 2, "q/2"); got["q/2"] != 0x80 {
			t.Errorf("SUBACK %#x, want 0x80", got["q/2"])
		}
	})

	t.Run("filter with more than 7 slashes fails", func(t *testing.T) {
		c := mustConnect(t, url, "deep")
		if got := c.subscribe(t, 1, "a/b/c/d/e/f/g/h/i"); got["a/b/c/d/e/f/g/h/i"] != 0x80 {
			t.Errorf("SUBACK %#x, want 0x80", got["a/b/c/d/e/f/g/h/i"])
		}
	})
}

func TestPublishLimits(t *testing.T) {
	url := startServer(t, Options{}).Endpoints().Plain
	sub := mustConnect(t, url, "sub")
	sub.mustSubscribe(t, "lim/#", "a/#")

	t.Run("oversize payload closes the connection", func(t *testing.T) {
		c := mustConnect(t, url, "big")
		c.Publish("lim/big", 1, false, make([]byte, defaultMaxPayload+1))
		c.expectLost(t)
		ok := mustConnect(t, url, "max")
		ok.publish(t, "lim/big", strings.Repeat("x", defaultMaxPayload))
		if m := sub.next(t); len(m.Payload()) != defaultMaxPayload {
			t.Errorf("received %d bytes on %s, want the %d-byte publish only", len(m.Payload()), m.Topic(), defaultMaxPayload)
		}
	})

	t.Run("QoS 2 publish closes the connection", func(t *testing.T) {
		c := mustConnect(t, url, "qos2pub")
		c.Publish("lim/qos2", 2, false, "two")
		c.expectLost(t)
		ok := mustConnect(t, url, "qos1pub")
		ok.publish(t, "lim/qos1", "one")
		sub.expect(t, "lim/qos1", "one")
	})

	t.Run("topic with more than 7 slashes is dropped", func(t *testing.T) {
		c := mustConnect(t, url, "deep")
		c.publish(t, "a/b/c/d/e/f/g/h/i", "deep")
		c.publish(t, "lim/after-deep", "sentinel")
		sub.expect(t, "lim/after-deep", "sentinel")
	})
}

func TestClientIDRules(t *testing.T) {
	url := startServer(t, Options{}).Endpoints().Plain
	for _, id := range []string{"$reserved", strings.Repeat("c", maxClientIDBytes+1)} {
		t.Run(id[:min(len(id), 12)], func(t *testing.T) {
			if _, err := connect(t, url, id); err == nil {
				t.Errorf("connect with client ID %.20q succeeded", id)
			}
		})
	}
	mustConnect(t, url, strings.Repeat("c", maxClientIDBytes))
}

func TestDuplicateClientIDDisconnectsFirst(t *testing.T) {
	url := startServer(t, Options{}).Endpoints().Plain
	first := mustConnect(t, url, "same")
	second := mustConnect(t, url, "same")
	first.expectLost(t)
	second.mustSubscribe(t, "dup/t")
	second.publish(t, "dup/t", "still here")
	second.expect(t, "dup/t", "still here")
}

func TestPublishThrottle(t *testing.T) {
	const rate = 5
	url := startServer(t, Options{Limits: Limits{MaxPublishRate: rate}}).Endpoints().Plain
	sub := mustConnect(t, url, "sub")
	sub.mustSubscribe(t, "burst", "sentinel")
	pub := mustConnect(t, url, "pub")
	const sent = 4 * rate
	for i := range sent {
		pub.publish(t, "burst", fmt.Sprint(i))
	}
	// Throttled publishes are dropped, so a sentinel from the same connection is
	// retried until the bucket refills; whatever burst messages got through arrive
	// before it.
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(wait)
	delivered := 0
	for done := false; !done; {
		select {
		case m := <-sub.msgs:
			if m.Topic() == "sentinel" {
				done = true
			} else {
				delivered++
			}
		case <-tick.C:
			pub.Publish("sentinel", 0, false, "s")
		case <-deadline:
			t.Fatal("sentinel never arrived")
		}
	}
	if delivered < rate || delivered >= sent {
		t.Errorf("%d of %d burst publishes delivered, want at least %d and fewer than all", delivered, sent, rate)
	}
}

func TestLimitsOff(t *testing.T) {
	url := startServer(t, Options{Limits: Limits{Off: true}}).Endpoints().Plain
	c := mustConnect(t, url, "$free")
	var filters []string
	for i := range 9 {
		filters = append(filters, fmt.Sprintf("free/%d", i))
	}
	for f, code := range c.subscribe(t, 2, filters...) {
		if code != 2 {
			t.Errorf("SUBACK for %s = %#x, want 2", f, code)
		}
	}
	tok := c.Publish("free/0", 2, false, "two")
	if !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("QoS 2 publish: %v", tok.Error())
	}
	m := c.next(t)
	if m.Qos() != 2 || string(m.Payload()) != "two" {
		t.Errorf("received %q at QoS %d, want %q at QoS 2", m.Payload(), m.Qos(), "two")
	}
}

func TestKeepAliveClamp(t *testing.T) {
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ asked, want uint16 }{
		{0, maxKeepAlive},
		{1, minKeepAlive},
		{29, minKeepAlive},
		{30, 30},
		{1200, 1200},
		{1201, maxKeepAlive},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.asked), func(t *testing.T) {
			cl := s.broker.NewClient(nil, listenerPlain, "ka", false)
			cl.State.Keepalive = tt.asked
			if err := s.gate.OnConnect(cl, packets.Packet{Connect: packets.ConnectParams{ClientIdentifier: "ka", Keepalive: tt.asked}}); err != nil {
				t.Fatal(err)
			}
			defer s.gate.OnDisconnect(cl, nil, true)
			if cl.State.Keepalive != tt.want {
				t.Errorf("keep-alive %d became %d, want %d", tt.asked, cl.State.Keepalive, tt.want)
			}
		})
	}
}

// TestMalformedInput sends bytes that are not MQTT: the server closes those
// connections and keeps serving.
func TestMalformedInput(t *testing.T) {
	s := startServer(t, Options{WebSocket: &WebSocketListener{Credentials: []Credential{wsThing}}, Plain: &PlainListener{}})
	eps := s.Endpoints()
	inputs := map[string][]byte{
		"garbage":                []byte("GET / HTTP/1.1\r\n\r\n"),
		"publish before connect": {0x30, 0x03, 0x00, 0x01, 'a'},
		"bad remaining length":   {0x10, 0xff, 0xff, 0xff, 0xff, 0x7f},
		"truncated connect":      {0x10, 0x10, 0x00, 0x04, 'M', 'Q'},
	}
	for name, in := range inputs {
		t.Run("tcp "+name, func(t *testing.T) {
			var d net.Dialer
			conn, err := d.DialContext(t.Context(), "tcp", strings.TrimPrefix(eps.Plain, "mqtt://"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(wait))
			if _, err := conn.Write(in); err != nil {
				t.Fatal(err)
			}
			if name != "truncated connect" { // that one waits for more bytes until the connect timeout
				if _, err := io.ReadAll(conn); err != nil {
					t.Errorf("server did not close the connection: %v", err)
				}
			}
		})
	}
	t.Run("websocket text frame", func(t *testing.T) {
		d := websocket.Dialer{HandshakeTimeout: wait, Subprotocols: []string{"mqtt"}}
		u := presign(t, eps.WebSocket, wsThing.AccessKeyID, wsThing.SecretAccessKey, "", time.Now(), 0)
		c, _, err := d.DialContext(t.Context(), u, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(wait))
		if err := c.WriteMessage(websocket.TextMessage, []byte("hello")); err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.ReadMessage(); err == nil {
			t.Error("server answered a text frame")
		} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Error("server did not close the connection")
		}
	})
	mustConnect(t, eps.Plain, "still-serving")
}
