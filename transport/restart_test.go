package transport_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/shadowsync/shadowsync/localiot"
	"github.com/shadowsync/shadowsync/transport"
)

// A publish made just after the server went away — before the client has read the
// close — must not leave the client waiting for the keep-alive: the write fails, the
// loss is reported at once, the publish fails or is delivered, and the client is back
// on the restarted server within a few seconds. (A failed write used to close the
// socket in a way paho took for its own disconnect: nobody noticed the loss until the
// publish timed out, 5 s later, and the keep-alive after that.)
func TestPublishRightAfterTheServerWentAway(t *testing.T) {
	for run := range 60 {
		srv, err := localiot.New(localiot.Options{})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- srv.Start(ctx) }()
		<-srv.Ready()
		addr := strings.TrimPrefix(srv.Endpoints().Plain, "mqtt://")
		cfg := transport.Config{Endpoint: srv.Endpoints().Plain, ClientID: "restart-1", MaxPublishRate: -1,
			Backoff: transport.ExponentialBackoff(20*time.Millisecond, time.Second, 0.5), ConnectTimeout: 5 * time.Second}
		conn := dialConn(t, cfg)
		got := newCollector()
		if _, err := conn.Subscribe(t.Context(), "t/restart", got, transport.QoS(1)); err != nil {
			t.Fatal(err)
		}
		if err := conn.Publish(t.Context(), "t/restart", []byte("before"), transport.QoS(1)); err != nil {
			t.Fatal(err)
		}
		got.next(t)
		cancel()
		<-done
		// The same address at once, as a restarted broker.
		srv2, err := localiot.New(localiot.Options{Plain: &localiot.PlainListener{Addr: addr}})
		if err != nil {
			t.Fatal(err)
		}
		ctx2, cancel2 := context.WithCancel(context.Background())
		done2 := make(chan error, 1)
		go func() { done2 <- srv2.Start(ctx2) }()
		<-srv2.Ready()

		start := time.Now()
		pctx, pcancel := context.WithTimeout(t.Context(), 10*time.Second)
		for conn.Publish(pctx, "t/restart", []byte("after"), transport.QoS(1), transport.NoOfflineQueue()) != nil && pctx.Err() == nil {
			if err := conn.AwaitConnection(pctx); err != nil {
				break
			}
		}
		err = pctx.Err()
		pcancel()
		if took := time.Since(start); err != nil || took > 3*time.Second {
			t.Fatalf("run %d: the publish after the restart got through after %v (%v); the loss went unnoticed", run, took, err)
		}
		cctx, ccancel := context.WithTimeout(context.Background(), time.Second)
		_ = conn.Close(cctx)
		ccancel()
		cancel2()
		<-done2
	}
}
