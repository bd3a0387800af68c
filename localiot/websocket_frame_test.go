package localiot

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// rawWS is a WebSocket client written frame by frame for the tests, so that they can
// send what a library would not.
type rawWS struct {
	conn net.Conn
	br   *bufio.Reader
}

// openRawWS upgrades a new connection to target with the presigned URL u and the
// header lines given, and fails the test unless the answer is 101.
func openRawWS(t *testing.T, target wsTarget, u string, headers ...string) *rawWS {
	t.Helper()
	conn := target.dial(t)
	_ = conn.SetDeadline(time.Now().Add(wait))
	if _, err := io.WriteString(conn, upgradeRequest(t, u, headers...)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the upgrade response: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade status %d, want 101", resp.StatusCode)
	}
	return &rawWS{conn: conn, br: br}
}

// send writes one frame whose first byte (FIN, RSV and opcode) is first, masked with
// a random key when masked is set, as a client must (RFC 6455 §5.3).
func (c *rawWS) send(t *testing.T, first byte, masked bool, payload []byte) {
	t.Helper()
	frame := []byte{first}
	var maskBit byte
	if masked {
		maskBit = 0x80
	}
	switch n := len(payload); {
	case n < 126:
		frame = append(frame, maskBit|byte(n))
	case n <= 0xffff:
		frame = append(frame, maskBit|126)
		frame = binary.BigEndian.AppendUint16(frame, uint16(n))
	default:
		frame = append(frame, maskBit|127)
		frame = binary.BigEndian.AppendUint64(frame, uint64(n))
	}
	body := append([]byte(nil), payload...)
	if masked {
		var key [4]byte
		_, _ = rand.Read(key[:])
		frame = append(frame, key[:]...)
		for i := range body {
			body[i] ^= key[i%4]
		}
	}
	if _, err := c.conn.Write(append(frame, body...)); err != nil {
		t.Fatalf("sending a frame: %v", err)
	}
}

// binary sends payload as one masked, final binary frame.
func (c *rawWS) binary(t *testing.T, payload []byte) { c.send(t, 0x80|opBinary, true, payload) }

// frame reads one frame from the server and returns its first byte and payload,
// failing the test if the server masked it (§5.1) or sent none within wait.
func (c *rawWS) frame(t *testing.T) (byte, []byte) {
	t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(wait))
	var hdr [2]byte
	if _, err := io.ReadFull(c.br, hdr[:]); err != nil {
		t.Fatalf("reading a frame: %v", err)
	}
	if hdr[1]&0x80 != 0 {
		t.Fatal("the server masked a frame")
	}
	n := uint64(hdr[1] & 0x7f)
	switch n {
	case 126:
		var ext [2]byte
		if _, err := io.ReadFull(c.br, ext[:]); err != nil {
			t.Fatal(err)
		}
		n = uint64(binary.BigEndian.Uint16(ext[:]))
	case 127:
		var ext [8]byte
		if _, err := io.ReadFull(c.br, ext[:]); err != nil {
			t.Fatal(err)
		}
		n = binary.BigEndian.Uint64(ext[:])
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(c.br, payload); err != nil {
		t.Fatalf("reading a frame's payload: %v", err)
	}
	return hdr[0], payload
}

// expectFrame fails the test unless the next frame is a final one with opcode op and
// the given payload.
func (c *rawWS) expectFrame(t *testing.T, op byte, payload []byte) {
	t.Helper()
	first, got := c.frame(t)
	if first != 0x80|op || !bytes.Equal(got, payload) {
		t.Fatalf("frame %#x % x, want %#x % x", first, got, 0x80|op, payload)
	}
}

// connack is the CONNACK accepting a clean session.
var connack = []byte{0x20, 0x02, 0x00, 0x00}

func closeCode(code int) []byte { return []byte{byte(code >> 8), byte(code)} }

// expectClose fails the test unless the next frame is a close frame with the status
// code given (any reason text may follow it, RFC 6455 §5.5.1), and the server then
// closes the connection.
func (c *rawWS) expectClose(t *testing.T, code int) {
	t.Helper()
	first, got := c.frame(t)
	if first != 0x80|opClose || !bytes.HasPrefix(got, closeCode(code)) {
		t.Fatalf("frame %#x % x, want a close frame with code %d", first, got, code)
	}
	waitClosed(t, c.br, c.conn, wait)
}

// The listener speaks RFC 6455 framing: an MQTT packet may be split across frames and
// messages, control frames may come between fragments, pings are answered, a close is
// echoed, and frames that break the rules end the connection with status 1002 (1003
// for text).
func TestWebSocketFraming(t *testing.T) {
	_, target := startWSTarget(t, false, nil)
	open := func(t *testing.T) *rawWS {
		u := presign(t, target.url, wsOperator.AccessKeyID, wsOperator.SecretAccessKey, wsOperator.SessionToken, time.Now(), 0)
		return openRawWS(t, target, u, wsHeaders...)
	}
	connect := connectPacket("framing")

	t.Run("connect in fragments around a ping", func(t *testing.T) {
		c := open(t)
		c.send(t, opBinary, true, connect[:3])
		c.send(t, 0x80|opPing, true, []byte("are you there"))
		c.expectFrame(t, opPong, []byte("are you there"))
		c.send(t, opContinuation, true, connect[3:7])
		c.send(t, 0x80|opPong, true, nil) // unsolicited: ignored
		c.send(t, 0x80|opContinuation, true, connect[7:])
		c.expectFrame(t, opBinary, connack)
	})
	t.Run("connect across messages", func(t *testing.T) {
		c := open(t)
		c.binary(t, connect[:5])
		c.binary(t, nil)
		c.binary(t, connect[5:])
		c.expectFrame(t, opBinary, connack)
	})
	t.Run("close is echoed", func(t *testing.T) {
		c := open(t)
		c.binary(t, connect)
		c.expectFrame(t, opBinary, connack)
		c.send(t, 0x80|opClose, true, append(closeCode(1000), "bye"...))
		c.expectFrame(t, opClose, closeCode(1000))
		waitClosed(t, c.br, c.conn, wait)
	})

	refused := []struct {
		name  string
		first byte
		mask  bool
		body  []byte
		code  int
	}{
		{"unmasked frame", 0x80 | opBinary, false, connect, closeProtocolError},
		{"continuation outside a message", 0x80 | opContinuation, true, connect, closeProtocolError},
		{"reserved opcode", 0x80 | 0x3, true, connect, closeProtocolError},
		{"reserved bit", 0x80 | 0x40 | opBinary, true, connect, closeProtocolError},
		{"fragmented ping", opPing, true, nil, closeProtocolError},
		{"oversized ping", 0x80 | opPing, true, make([]byte, 126), closeProtocolError},
		{"one-byte close", 0x80 | opClose, true, []byte{3}, closeProtocolError},
		{"text frame", 0x80 | opText, true, []byte("hello"), closeUnsupportedData},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			c := open(t)
			c.send(t, tt.first, tt.mask, tt.body)
			c.expectClose(t, tt.code)
		})
	}
	t.Run("new message inside a fragmented one", func(t *testing.T) {
		c := open(t)
		c.send(t, opBinary, true, connect[:3])
		c.send(t, 0x80|opBinary, true, connect[3:])
		c.expectClose(t, closeProtocolError)
	})
}

// Payloads past 64 KiB take WebSocket's 64-bit length both ways, over ws and wss.
func TestWebSocketLargeMessages(t *testing.T) {
	for _, secure := range []bool{false, true} {
		_, target := startWSTarget(t, secure, nil)
		t.Run(target.scheme(), func(t *testing.T) {
			u := presign(t, target.url, wsOperator.AccessKeyID, wsOperator.SecretAccessKey, wsOperator.SessionToken, time.Now(), 0)
			var opts []clientOption
			if target.tlsConf != nil {
				opts = append(opts, withTLS(target.tlsConf))
			}
			c := mustConnect(t, u, "large-"+target.scheme(), opts...)
			c.mustSubscribe(t, "large")
			for _, size := range []int{100, 1000, 100 << 10} {
				payload := strings.Repeat("x", size)
				c.publish(t, "large", payload)
				c.expect(t, "large", payload)
			}
		})
	}
}
