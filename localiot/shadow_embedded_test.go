package localiot

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqttc "github.com/eclipse/paho.mqtt.golang"
	"github.com/shadowsync/shadowsync/shadowstate"
)

func TestShadowProtocolEmbedded(t *testing.T) {
	certs, err := EnsureCerts("", "Tls-1")
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, Options{
		Plain:     &PlainListener{},
		TLS:       certs.TLSListener(""),
		WebSocket: &WebSocketListener{Credentials: []Credential{{AccessKeyID: "AKIDWS", SecretAccessKey: "ws-secret", Thing: "Ws-1"}}},
	})
	eps := s.Endpoints()
	thingTLS, err := certs.ClientTLS("Tls-1")
	if err != nil {
		t.Fatal(err)
	}

	t.Run("plain operator", func(t *testing.T) {
		runShadowProtocol(t, dialProtocolClient(t, eps.Plain, "Plain-1", nil), "Plain-1")
	})
	t.Run("TLS thing certificate", func(t *testing.T) {
		pc := dialProtocolClient(t, eps.TLS, "Tls-1", func(o *mqttc.ClientOptions) { o.SetTLSConfig(thingTLS) })
		runShadowProtocol(t, pc, "Tls-1")
	})
	t.Run("WebSocket SigV4 thing credential", func(t *testing.T) {
		u := presign(t, eps.WebSocket, "AKIDWS", "ws-secret", "", time.Now(), 0)
		runShadowProtocol(t, dialProtocolClient(t, u, "Ws-1", nil), "Ws-1")
	})
	t.Run("the service state matches what devices saw", func(t *testing.T) {
		sh, err := s.Shadow(shadowstate.ID{Thing: "Plain-1"})
		if err != nil || !sh.Exists || sh.Version != 5 {
			t.Errorf("Shadow(Plain-1) = exists %v version %d, %v; want the recreated shadow at version 5", sh.Exists, sh.Version, err)
		}
		if _, err := s.Shadow(shadowstate.ID{Thing: "bad name"}); err == nil {
			t.Error("Shadow accepted an invalid thing name")
		}
	})
}

func TestThingCannotUseAnotherThingsShadow(t *testing.T) {
	certs, err := EnsureCerts("", "Alpha", "Beta")
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, Options{TLS: certs.TLSListener("")})
	alphaTLS, _ := certs.ClientTLS("Alpha")
	betaTLS, _ := certs.ClientTLS("Beta")
	beta := dialProtocolClient(t, s.Endpoints().TLS, "Beta", func(o *mqttc.ClientOptions) { o.SetTLSConfig(betaTLS) })
	beta.request(shadowstate.ID{Thing: "Beta"}, shadowstate.OpUpdate, `{"state":{"reported":{"secret":1}}}`, 2)

	alpha := mustConnect(t, s.Endpoints().TLS, "Alpha", withTLS(alphaTLS))
	if got := alpha.subscribe(t, 1, "$aws/things/Beta/shadow/get/accepted"); got["$aws/things/Beta/shadow/get/accepted"] != 0x80 {
		t.Fatalf("Alpha may read Beta's shadow replies: SUBACK %v", got)
	}
	alpha.publish(t, "$aws/things/Beta/shadow/update", `{"state":{"reported":{"secret":2}}}`)
	alpha.publish(t, "$aws/things/Beta/shadow/delete", ``)
	// Alpha's own request, published after the forbidden ones on the same connection,
	// is answered; by then the forbidden ones would have been applied too.
	alpha.mustSubscribe(t, "$aws/things/Alpha/shadow/update/accepted")
	alpha.publish(t, "$aws/things/Alpha/shadow/update", `{"state":{"reported":{"ok":true}}}`)
	if m := alpha.next(t); m.Topic() != "$aws/things/Alpha/shadow/update/accepted" {
		t.Fatalf("got %s", m.Topic())
	}
	sh, err := s.Shadow(shadowstate.ID{Thing: "Beta"})
	if err != nil || sh.Version != 1 || !sh.Exists {
		t.Fatalf("Beta's shadow was changed by Alpha: exists %v version %d (%v)", sh.Exists, sh.Version, err)
	}
}

func TestLastWillOnShadowTopicIsNotApplied(t *testing.T) {
	s := startServer(t, Options{})
	watcher := mustConnect(t, s.Endpoints().Plain, "watcher")
	watcher.mustSubscribe(t, "$aws/things/Will-1/shadow/update")
	conns := make(chan net.Conn, 1)
	mustConnect(t, s.Endpoints().Plain, "dying", func(o *mqttc.ClientOptions) {
		o.SetWill("$aws/things/Will-1/shadow/update", `{"state":{"reported":{"online":false}}}`, 1, false)
		o.SetCustomOpenConnectionFn(func(u *url.URL, _ mqttc.ClientOptions) (net.Conn, error) {
			c, err := net.Dial("tcp", u.Host)
			if err == nil {
				conns <- c
			}
			return c, err
		})
	})
	// Closing the socket without DISCONNECT makes the broker send the will.
	(<-conns).Close()
	m := watcher.next(t)
	if m.Topic() != "$aws/things/Will-1/shadow/update" || !strings.Contains(string(m.Payload()), "online") {
		t.Fatalf("subscribers did not get the will: %s %s", m.Topic(), m.Payload())
	}
	if sh, _ := s.Shadow(shadowstate.ID{Thing: "Will-1"}); sh.Exists {
		t.Fatalf("the will was applied to the shadow: %+v", sh)
	}
}

func TestShadowsSurviveRestartWithBoltStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shadows.db")
	run := func(f func(s *Server)) {
		store, err := OpenBoltStore(path)
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		s, err := New(Options{Store: store})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- s.Start(ctx) }()
		<-s.Ready()
		f(s)
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	run(func(s *Server) {
		pc := dialProtocolClient(t, s.Endpoints().Plain, "Keep-1", nil)
		for _, req := range []string{`{"state":{"desired":{"a":1}}}`, `{"state":{"reported":{"a":0}}}`, `{"state":{"desired":{"a":2}}}`} {
			pc.request(shadowstate.ID{Thing: "Keep-1"}, shadowstate.OpUpdate, req, 3)
		}
		pc.request(shadowstate.ID{Thing: "Keep-1", Name: "cfg"}, shadowstate.OpUpdate, `{"state":{"reported":{"fw":"2"}}}`, 2)
		pc.c.Disconnect(0)
	})
	run(func(s *Server) {
		pc := dialProtocolClient(t, s.Endpoints().Plain, "Keep-1", nil)
		doc := pc.request(shadowstate.ID{Thing: "Keep-1"}, shadowstate.OpGet, ``, 1)[shadowstate.Accepted]
		if doc == nil || num(doc["version"]) != "3" || num(doc["state"].(map[string]any)["delta"].(map[string]any)["a"]) != "2" {
			t.Fatalf("after restart: %v", doc)
		}
		named := pc.request(shadowstate.ID{Thing: "Keep-1", Name: "cfg"}, shadowstate.OpGet, ``, 1)[shadowstate.Accepted]
		if named == nil || num(named["version"]) != "1" {
			t.Fatalf("named shadow after restart: %v", named)
		}
		pc.c.Disconnect(0)
	})
}

func TestObserveReportsClientTraffic(t *testing.T) {
	events := make(chan Event, 16)
	s := startServer(t, Options{Observe: func(e Event) { events <- e }})
	c := mustConnect(t, s.Endpoints().Plain, "watched")
	c.subscribe(t, 1, "a/b")
	if tok := c.Unsubscribe("a/b"); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	c.Disconnect(0)
	var got []string
	for len(got) < 4 {
		select {
		case e := <-events:
			got = append(got, fmt.Sprintf("%s %s %v %v", e.Kind, e.ClientID, e.Filters, e.Granted))
		case <-time.After(wait):
			t.Fatalf("events so far: %v", got)
		}
	}
	want := []string{"connect watched [] []", "subscribe watched [a/b] [1]", "unsubscribe watched [a/b] []", "disconnect watched [] []"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("events %v, want %v", got, want)
	}
}
