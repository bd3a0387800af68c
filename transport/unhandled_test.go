package transport_test

import (
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/shadowsync/shadowsync/transport"
)

// serverSideSub makes the broker hold a subscription for each client that the client
// never asked for, as a server that kept a session from an earlier run of the
// program does.
type serverSideSub struct {
	allowAll
	broker *mqtt.Server
	filter string
}

func (h *serverSideSub) ID() string { return "server-side-sub" }

func (h *serverSideSub) Provides(b byte) bool {
	switch b {
	case mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnSessionEstablished:
		return true
	}
	return false
}

func (h *serverSideSub) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	sub := packets.Subscription{Filter: h.filter, Qos: 1}
	h.broker.Topics.Subscribe(cl.ID, sub)
	cl.State.Subscriptions.Add(sub.Filter, sub)
}

// Config.Unhandled receives the messages no subscription of the Conn matches (here,
// of a subscription the server holds and the program never made), and only those.
func TestUnhandledReceivesWhatNoSubscriptionTakes(t *testing.T) {
	hook := &serverSideSub{filter: "kept/#"}
	broker, endpoint := startBareBroker(t, hook)
	hook.broker = broker

	unhandled := newCollector()
	conn := dialConn(t, transport.Config{Endpoint: endpoint, ClientID: "unhandled-1", Unhandled: unhandled})
	own := newCollector()
	if _, err := conn.Subscribe(t.Context(), "own/t", own, transport.QoS(1)); err != nil {
		t.Fatal(err)
	}

	if err := broker.Publish("kept/a", []byte("1"), false, 1); err != nil {
		t.Fatal(err)
	}
	if m := unhandled.next(t); m.Topic != "kept/a" || string(m.Payload) != "1" {
		t.Errorf("unhandled got %s %q, want kept/a \"1\"", m.Topic, m.Payload)
	}
	// A message a subscription takes goes to it alone: the next unhandled message is
	// the one published after it.
	if err := broker.Publish("own/t", []byte("2"), false, 1); err != nil {
		t.Fatal(err)
	}
	if m := own.next(t); m.Topic != "own/t" {
		t.Errorf("subscription got %s", m.Topic)
	}
	if err := broker.Publish("kept/b", []byte("3"), false, 1); err != nil {
		t.Fatal(err)
	}
	if m := unhandled.next(t); m.Topic != "kept/b" {
		t.Errorf("unhandled got %s after own/t, want kept/b (own/t must not reach it)", m.Topic)
	}
}
