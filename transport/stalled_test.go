package transport_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/shadowsync/shadowsync/transport"
)

// stalledBroker accepts one MQTT connection on 127.0.0.1, acknowledges its CONNECT
// and then never reads again, as a peer whose network stalled does. It returns the
// endpoint and closes everything when the test ends.
func stalledBroker(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			// The CONNECT fits one read; the broker reads nothing after it.
			_ = c.SetReadDeadline(time.Now().Add(wait))
			if _, err := c.Read(make([]byte, 4096)); err != nil {
				continue
			}
			_, _ = c.Write([]byte{0x20, 0x02, 0x00, 0x00}) // CONNACK, accepted
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return "mqtt://" + ln.Addr().String()
}

// A publish honours its ctx even when the connection cannot take it: once the
// socket and the client's buffers are full, the MQTT library's hand-off would wait
// for its write timeout (OperationTimeout, 4 s here) whatever ctx says, and then
// fail with an error of its own.
func TestPublishHonoursCtxWhenThePeerStopsReading(t *testing.T) {
	const opTimeout = 4 * time.Second
	c := dialConn(t, transport.Config{Endpoint: stalledBroker(t), ClientID: "stalled", OperationTimeout: opTimeout})
	payload := bytes.Repeat([]byte("x"), 100<<10)
	result := make(chan error, 1)
	go func() {
		// Loopback sockets take a few megabytes and the client buffers one more:
		// 400 publishes of 100 KiB are far more than both. The first publishes that
		// fail wait for an acknowledgement of the write; the ones after them find the
		// library's hand-off blocked.
		failed := 0
		for range 400 {
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			start := time.Now()
			err := c.Publish(ctx, "stalled/t", payload, transport.QoS(0))
			took := time.Since(start)
			cancel()
			if err != nil && !errors.Is(err, context.DeadlineExceeded) {
				result <- err
				return
			}
			if took > opTimeout/2 {
				result <- fmt.Errorf("a publish with a 200 ms ctx took %v", took)
				return
			}
			if err != nil {
				if failed++; failed == 5 {
					result <- nil
					return
				}
			}
		}
		result <- errors.New("400 publishes went into a peer that reads nothing")
	}()
	select {
	case err := <-result:
		if err != nil {
			t.Errorf("publishing into a full connection: %v, want each publish to end at its ctx's deadline", err)
		}
	case <-time.After(wait):
		t.Fatalf("a publish with a 200 ms ctx was still running after %v", wait)
	}
}
