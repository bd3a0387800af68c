package localiot

import (
	"crypto/tls"
	"errors"
	"net"
	"net/url"
	"testing"

	mqttc "github.com/eclipse/paho.mqtt.golang"
	mqttp "github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/shadowsync/shadowsync/shadowstate"
)

// tlsAs returns the client option that presents the certificate of name (a thing, or
// OperatorCertName).
func tlsAs(t *testing.T, certs *CertSet, name string) clientOption {
	t.Helper()
	cfg, err := certs.ClientTLS(name)
	if err != nil {
		t.Fatal(err)
	}
	return withTLS(cfg)
}

// withWill sets a Last Will at QoS 1.
func withWill(topic, payload string, retain bool) clientOption {
	return func(o *mqttc.ClientOptions) { o.SetWill(topic, payload, 1, retain) }
}

// withRawConn dials the connection itself and hands it to conns, so that a test can
// close it without DISCONNECT, which makes the broker send the client's will.
func withRawConn(conns chan<- net.Conn) clientOption {
	return func(o *mqttc.ClientOptions) {
		o.SetCustomOpenConnectionFn(func(u *url.URL, opts mqttc.ClientOptions) (net.Conn, error) {
			var (
				c   net.Conn
				err error
			)
			if u.Scheme == "mqtts" || u.Scheme == "ssl" || u.Scheme == "tls" {
				c, err = tls.Dial("tcp", u.Host, opts.TLSConfig)
			} else {
				c, err = net.Dial("tcp", u.Host)
			}
			if err == nil {
				select { // paho may dial again, with MQTT 3.1, after a refusal
				case conns <- c:
				default:
				}
			}
			return c, err
		})
	}
}

// publishRetained publishes a retained message at QoS 1 and waits for the PUBACK.
func (c *client) publishRetained(t *testing.T, topic, payload string) {
	t.Helper()
	tok := c.Publish(topic, 1, true, payload)
	if !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("retained publish to %s: %v", topic, tok.Error())
	}
}

// A Last Will is a publish the broker makes later on the client's behalf, so it must
// pass the publish check of the client's principal when the client connects; and a
// retained will on a reserved topic is refused for everyone. The refused CONNECT gets
// "not authorized", and nothing of the will is ever delivered.
func TestWillMustPassThePolicy(t *testing.T) {
	certs, err := EnsureCerts("", "X", "Y")
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, Options{TLS: certs.TLSListener(""), ThingTopics: []string{"devices/${thing}/#"}})
	url := s.Endpoints().TLS
	forged := []string{"$aws/things/Y/shadow/update/delta", "$aws/things/X/shadow/get/accepted", "elsewhere", "$aws/things/X/shadow/update", "$aws/things/Y/shadow/update"}
	watcher := mustConnect(t, url, "watcher", tlsAs(t, certs, OperatorCertName))
	watcher.mustSubscribe(t, append([]string{"devices/#"}, forged...)...)

	refused := []struct {
		name, as, id, topic string
		retain              bool
	}{
		{"thing: another thing's delta, retained", "X", "X", "$aws/things/Y/shadow/update/delta", true},
		{"thing: another thing's delta", "X", "X", "$aws/things/Y/shadow/update/delta", false},
		{"thing: its own reply topic", "X", "X", "$aws/things/X/shadow/get/accepted", false},
		{"thing: a topic outside its policy", "X", "X", "elsewhere", false},
		{"thing: its own request topic, retained", "X", "X", "$aws/things/X/shadow/update", true},
		{"operator: a reply topic", OperatorCertName, "op-will", "$aws/things/Y/shadow/update/delta", false},
		{"operator: a request topic, retained", OperatorCertName, "op-will", "$aws/things/Y/shadow/update", true},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			conns := make(chan net.Conn, 1)
			_, err := connect(t, url, tt.id, tlsAs(t, certs, tt.as), withWill(tt.topic, `{"state":{"desired":{"forged":999999}},"version":999999}`, tt.retain), withRawConn(conns))
			if err == nil {
				t.Errorf("CONNECT with a will on %s (retain %v) accepted, want \"not authorized\"", tt.topic, tt.retain)
				(<-conns).Close() // lose the connection, so the broker sends the will
				return
			}
			if !errors.Is(err, mqttp.ErrorRefusedNotAuthorised) {
				t.Errorf("CONNECT refused with %v, want %v", err, mqttp.ErrorRefusedNotAuthorised)
			}
		})
	}

	// A will the policy allows is accepted and delivered when the connection is lost:
	// the positive control for everything above.
	conns := make(chan net.Conn, 1)
	mustConnect(t, url, "X", tlsAs(t, certs, "X"), withWill("devices/X/status", "offline", false), withRawConn(conns))
	mustConnect(t, url, "op-will", tlsAs(t, certs, OperatorCertName), withWill("$aws/things/Y/shadow/update", `{"state":{"reported":{"online":false}}}`, false))
	(<-conns).Close()
	// Had any refused will been sent, it would have arrived before this one.
	watcher.expect(t, "devices/X/status", "offline")

	// No will left a retained message on a shadow topic.
	later := mustConnect(t, url, "later", tlsAs(t, certs, OperatorCertName))
	later.mustSubscribe(t, forged...)
	watcher.publishRetained(t, "devices/X/config", "kept")
	watcher.expect(t, "devices/X/config", "kept")
	later.mustSubscribe(t, "devices/X/config")
	later.expect(t, "devices/X/config", "kept") // retained messages for the earlier filters would come first
}

// Nobody, operators included, may retain a message on a reserved topic: the embedded
// broker would replay it to every later subscriber of that topic, so a retained
// "request" or "reply" would reach devices as if the shadow service had sent it.
func TestNobodyRetainsOnReservedTopics(t *testing.T) {
	certs, err := EnsureCerts("", "X")
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, Options{TLS: certs.TLSListener("")})
	url := s.Endpoints().TLS
	x := mustConnect(t, url, "X", tlsAs(t, certs, "X"))
	op := mustConnect(t, url, "op", tlsAs(t, certs, OperatorCertName))

	reserved := []string{"$aws/things/X/shadow/update", "$aws/things/X/shadow/name/cfg/update", "$aws/things/X/jobs/notify"}
	x.publishRetained(t, reserved[0], `{"state":{"reported":{"forged":1}}}`)
	op.publishRetained(t, reserved[1], `{"state":{"desired":{"forged":1}}}`)
	op.publishRetained(t, reserved[2], `{"jobs":{}}`)
	op.publishRetained(t, "devices/X/config", "kept") // allowed: the positive control

	later := mustConnect(t, url, "later", tlsAs(t, certs, OperatorCertName))
	later.mustSubscribe(t, reserved...)
	later.mustSubscribe(t, "devices/X/config")
	// The SUBSCRIBEs are handled in order, so retained messages for the reserved
	// topics would arrive before this one.
	later.expect(t, "devices/X/config", "kept")

	// A refused retained request is not applied either.
	for _, id := range []shadowstate.ID{{Thing: "X"}, {Thing: "X", Name: "cfg"}} {
		if sh, err := s.Shadow(id); err != nil || sh.Exists {
			t.Errorf("shadow %v exists %v (%v): a refused retained request was applied", id, sh.Exists, err)
		}
	}
	if !x.IsConnected() || !op.IsConnected() {
		t.Error("a refused retained publish disconnected its publisher")
	}
}
