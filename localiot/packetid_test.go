package localiot

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// rawClient speaks MQTT 3.1.1 by hand, to choose its packet identifiers.
type rawClient struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dialRaw(t *testing.T, addr, id string) *rawClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	rc := &rawClient{t: t, conn: conn, r: bufio.NewReader(conn)}
	rc.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 4,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 60, ClientIdentifier: id}})
	if pk := rc.read(); pk.FixedHeader.Type != packets.Connack || pk.ReasonCode != 0 {
		t.Fatalf("CONNACK %+v", pk)
	}
	return rc
}

func (rc *rawClient) send(pk packets.Packet) {
	rc.t.Helper()
	pk.ProtocolVersion = 4
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&buf)
	case packets.Subscribe:
		err = pk.SubscribeEncode(&buf)
	}
	if err != nil {
		rc.t.Fatal(err)
	}
	if _, err := rc.conn.Write(buf.Bytes()); err != nil {
		rc.t.Fatal(err)
	}
}

// read reads one packet from the server.
func (rc *rawClient) read() packets.Packet {
	rc.t.Helper()
	_ = rc.conn.SetReadDeadline(time.Now().Add(wait))
	b, err := rc.r.ReadByte()
	if err != nil {
		rc.t.Fatal(err)
	}
	var fh packets.FixedHeader
	if err := fh.Decode(b); err != nil {
		rc.t.Fatal(err)
	}
	n, mul := 0, 1
	for {
		d, err := rc.r.ReadByte()
		if err != nil {
			rc.t.Fatal(err)
		}
		n += int(d&127) * mul
		if d < 128 {
			break
		}
		mul *= 128
	}
	fh.Remaining = n
	body := make([]byte, n)
	if _, err := io.ReadFull(rc.r, body); err != nil {
		rc.t.Fatal(err)
	}
	pk := packets.Packet{FixedHeader: fh, ProtocolVersion: 4}
	switch fh.Type {
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Suback:
		err = pk.SubackDecode(body)
	case packets.Publish:
		err = pk.PublishDecode(body)
	}
	if err != nil {
		rc.t.Fatal(err)
	}
	return pk
}

func (rc *rawClient) subscribe(id uint16, filter string) byte {
	rc.t.Helper()
	rc.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: id,
		Filters: packets.Subscriptions{{Filter: filter, Qos: 1}}})
	for {
		pk := rc.read()
		if pk.FixedHeader.Type == packets.Suback {
			if pk.PacketID != id || len(pk.ReasonCodes) != 1 {
				rc.t.Fatalf("SUBACK %+v for packet %d", pk, id)
			}
			return pk.ReasonCodes[0]
		}
	}
}

// TestSubscribeWhileDeliveringSamePacketID: a client's SUBSCRIBE carries the packet
// identifier of a QoS 1 message the broker is delivering to it, which MQTT allows;
// the subscription must be granted, not refused as "identifier in use".
func TestSubscribeWhileDeliveringSamePacketID(t *testing.T) {
	s := startServer(t, Options{})
	addr := s.Endpoints().Plain[len("mqtt://"):]
	rc := dialRaw(t, addr, "raw-1")
	if code := rc.subscribe(1, "feed/a"); code != 1 {
		t.Fatalf("first SUBSCRIBE: code %#x", code)
	}
	pub := mustConnect(t, s.Endpoints().Plain, "publisher")
	pub.publish(t, "feed/a", "hello") // delivered to raw-1 at QoS 1 as packet 1, never acknowledged
	if pk := rc.read(); pk.FixedHeader.Type != packets.Publish || pk.PacketID != 1 {
		t.Fatalf("want the PUBLISH with packet identifier 1, got %+v", pk)
	}
	if code := rc.subscribe(1, "feed/b"); code != 1 {
		t.Fatalf("SUBSCRIBE reusing the identifier of a delivery in flight: code %#x, want 0x01", code)
	}
}
