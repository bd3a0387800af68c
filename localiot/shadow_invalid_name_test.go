package localiot

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a logger.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// waitLog waits until the log holds a line containing every one of parts.
func waitLog(t *testing.T, log *syncBuffer, parts ...string) {
	t.Helper()
	logged := func() bool {
		for _, line := range strings.Split(log.String(), "\n") {
			ok := true
			for _, p := range parts {
				ok = ok && strings.Contains(line, p)
			}
			if ok {
				return true
			}
		}
		return false
	}
	if !poll(wait, logged) {
		t.Fatalf("no log line with %q within %v; log:\n%s", parts, wait, log.String())
	}
}

// A request on a shadow topic whose thing or shadow name breaks AWS's naming rules is
// answered on its /rejected topic with a 400 error, echoing the clientToken; when not
// even that reply topic fits AWS's topic limits, it is dropped with a warning.
func TestInvalidShadowNamesAreRejected(t *testing.T) {
	certs, err := EnsureCerts("", "X")
	if err != nil {
		t.Fatal(err)
	}
	var log syncBuffer
	s := startServer(t, Options{
		TLS:    certs.TLSListener(""),
		Logger: slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	url := s.Endpoints().TLS
	x := mustConnect(t, url, "X", tlsAs(t, certs, "X"))
	op := mustConnect(t, url, "op", tlsAs(t, certs, OperatorCertName))

	tests := []struct {
		name  string
		c     *client
		topic string
	}{
		{"shadow name with '!'", x, "$aws/things/X/shadow/name/bad!name/get"},
		{"shadow name of 65 bytes", x, "$aws/things/X/shadow/name/" + strings.Repeat("n", 65) + "/update"},
		{"empty shadow name", op, "$aws/things/X/shadow/name//delete"},
		{"thing name with '!'", op, "$aws/things/bad!thing/shadow/update"},
		{"thing name of 129 bytes", op, "$aws/things/" + strings.Repeat("t", 129) + "/shadow/name/cfg/get"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.c.mustSubscribe(t, tt.topic+"/rejected")
			tt.c.publish(t, tt.topic, `{"state":{"reported":{"a":1}},"clientToken":"tok-1"}`)
			m := tt.c.next(t)
			if m.Topic() != tt.topic+"/rejected" || !strings.HasPrefix(string(m.Payload()), `{"code":400,"message":"`) || !strings.Contains(string(m.Payload()), `"clientToken":"tok-1"`) {
				t.Errorf("reply %s on %s, want a 400 error with clientToken tok-1 on %s/rejected", m.Payload(), m.Topic(), tt.topic)
			}
			tt.c.Unsubscribe(tt.topic + "/rejected").WaitTimeout(wait)
		})
	}

	t.Run("no reply topic fits: dropped with a warning", func(t *testing.T) {
		// 253 bytes of request topic; its reply topic would be 262, over AWS's 256.
		topic := "$aws/things/" + strings.Repeat("t", 230) + "/shadow/get"
		op.publish(t, topic, `{}`)
		waitLog(t, &log, "level=WARN", "invalid thing or shadow name", "no reply topic")
	})
}
