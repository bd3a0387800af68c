package localiot

import (
	"errors"
	"testing"

	mqttc "github.com/eclipse/paho.mqtt.golang"
	mqttp "github.com/eclipse/paho.mqtt.golang/packets"
)

// withPersistentSession asks for a session kept across connections (clean session 0).
func withPersistentSession() clientOption {
	return func(o *mqttc.ClientOptions) { o.SetCleanSession(false) }
}

// waitQueued waits until the kept session of client ID id holds a message for it.
func waitQueued(t *testing.T, s *Server, id string) {
	t.Helper()
	waitFor(t, wait, "a message queued for the session of "+id, func() bool {
		cl, ok := s.broker.Clients.Get(id)
		return ok && cl.State.Inflight.Len() > 0
	})
}

// A thing's certificate connects only with the thing's name as client ID, or the
// name followed by "@" and a suffix; any other client ID is refused with "not
// authorized". Operators choose any client ID.
func TestThingClientIDIsPinned(t *testing.T) {
	certs, err := EnsureCerts("", "X", "Y")
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, Options{TLS: certs.TLSListener("")})
	url := s.Endpoints().TLS

	// thingY is Y's device; X's certificate must not be able to disconnect it.
	thingY := mustConnect(t, url, "Y", tlsAs(t, certs, "Y"))
	for _, id := range []string{"Y", "Y@X", "X-2", "X:2", "XX", "x", "@X", ""} {
		if _, err := connect(t, url, id, tlsAs(t, certs, "X")); !errors.Is(err, mqttp.ErrorRefusedNotAuthorised) {
			t.Errorf("X's certificate with client ID %q: %v, want %v", id, err, mqttp.ErrorRefusedNotAuthorised)
		}
	}
	for _, id := range []string{"X", "X@app", "X@2"} {
		if _, err := connect(t, url, id, tlsAs(t, certs, "X")); err != nil {
			t.Errorf("X's certificate with client ID %q: %v", id, err)
		}
	}
	if !thingY.IsConnected() {
		t.Error("Y was disconnected by a connection with another thing's certificate")
	}
	if _, err := connect(t, url, "any-app-id", tlsAs(t, certs, OperatorCertName)); err != nil {
		t.Errorf("operator with a free client ID: %v", err)
	}

	t.Run("plain listener acting as things", func(t *testing.T) {
		s := startServer(t, Options{Plain: &PlainListener{ThingFromClientID: true}})
		c := mustConnect(t, s.Endpoints().Plain, "Pump-7@app")
		got := c.subscribe(t, 1, "$aws/things/Pump-7/shadow/update/delta", "$aws/things/Pump-7@app/shadow/update/delta")
		if got["$aws/things/Pump-7/shadow/update/delta"] != 1 || got["$aws/things/Pump-7@app/shadow/update/delta"] != 0x80 {
			t.Errorf("SUBACK codes %v: Pump-7@app should act as thing Pump-7", got)
		}
	})
}

// A kept session goes only to a connection of the same principal. A connection of
// another principal that takes over its client ID starts with a clean session: it
// inherits neither the subscriptions nor the queued messages.
func TestSessionIsNeverHandedToAnotherIdentity(t *testing.T) {
	certs, err := EnsureCerts("", "Y", "Z")
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, Options{TLS: certs.TLSListener(""), ThingTopics: []string{"sentinel/${thing}"}})
	url := s.Endpoints().TLS
	op := mustConnect(t, url, "app", tlsAs(t, certs, OperatorCertName))

	// leave disconnects c, keeping its session, and has a message queued for it by
	// publishing payload to topic.
	leave := func(t *testing.T, c *client, id, topic, payload string) {
		t.Helper()
		c.Disconnect(50)
		op.publish(t, topic, payload)
		waitQueued(t, s, id)
	}
	// sentinel proves that c's session delivers nothing before a message sent now:
	// queued messages are resent right after CONNACK, before anything else.
	sentinel := func(t *testing.T, c *client, topic string) {
		t.Helper()
		c.mustSubscribe(t, topic)
		op.publish(t, topic, "now")
		c.expect(t, topic, "now")
	}

	t.Run("the same thing gets its session back", func(t *testing.T) { // the positive control
		y := mustConnect(t, url, "Y", tlsAs(t, certs, "Y"), withPersistentSession())
		y.mustSubscribe(t, "$aws/things/Y/shadow/update/delta")
		leave(t, y, "Y", "$aws/things/Y/shadow/update", `{"state":{"desired":{"secret":1}}}`)
		back := mustConnect(t, url, "Y", tlsAs(t, certs, "Y"), withPersistentSession())
		if !back.sessionPresent {
			t.Fatal("session not present for the same thing")
		}
		back.expectPrefix(t, "$aws/things/Y/shadow/update/delta", `{"state":{"secret":1}`)
		leave(t, back, "Y", "$aws/things/Y/shadow/update", `{"state":{"desired":{"secret":2}}}`)
	})

	t.Run("an operator taking a thing's client ID starts clean", func(t *testing.T) {
		intruder := mustConnect(t, url, "Y", tlsAs(t, certs, OperatorCertName), withPersistentSession())
		if intruder.sessionPresent {
			t.Error("CONNACK says session present: the thing's session was handed to an operator")
		}
		sentinel(t, intruder, "sentinel/Y")
	})

	t.Run("a thing taking an operator's client ID starts clean", func(t *testing.T) {
		// An operator's session holds other things' documents; a thing named like its
		// client ID must not receive them.
		app := mustConnect(t, url, "Z", tlsAs(t, certs, OperatorCertName), withPersistentSession())
		app.mustSubscribe(t, "$aws/things/+/shadow/update/documents")
		leave(t, app, "Z", "$aws/things/Other/shadow/update", `{"state":{"reported":{"secret":3}}}`)
		z := mustConnect(t, url, "Z", tlsAs(t, certs, "Z"), withPersistentSession())
		if z.sessionPresent {
			t.Error("CONNACK says session present: an operator's session was handed to a thing")
		}
		sentinel(t, z, "sentinel/Z")
		// Z may read its own shadow's topics, and gets them through its new session.
		z.mustSubscribe(t, "$aws/things/Z/shadow/update/accepted")
		z.publish(t, "$aws/things/Z/shadow/update", `{"state":{"reported":{"ok":1}}}`)
		z.expectPrefix(t, "$aws/things/Z/shadow/update/accepted", `{"state":{"reported":{"ok":1}}`)
	})
}

// The embedded broker's own client, which the shadow service publishes through, has
// client ID "inline"; no connection may take that client ID over.
func TestInlineClientIDIsReserved(t *testing.T) {
	s := startServer(t, Options{})
	url := s.Endpoints().Plain
	if _, err := connect(t, url, "inline"); !errors.Is(err, mqttp.ErrorRefusedNotAuthorised) {
		t.Errorf("client ID \"inline\": %v, want %v", err, mqttp.ErrorRefusedNotAuthorised)
	}
	c := mustConnect(t, url, "after")
	c.mustSubscribe(t, "$aws/things/T/shadow/update/accepted")
	c.publish(t, "$aws/things/T/shadow/update", `{"state":{"reported":{"a":1}}}`)
	c.expectPrefix(t, "$aws/things/T/shadow/update/accepted", `{"state":{"reported":{"a":1}}`)
}
