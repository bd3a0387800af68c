package reconciler_test

import (
	"context"
	"testing"
	"time"

	"github.com/shadowsync/shadowsync/localiot"
	"github.com/shadowsync/shadowsync/reconciler"
)

// A program that runs the embedded broker and its manager under one ctx stops both
// at once: the manager's shutdown must not wait for acknowledgements from a broker
// that is already gone (it used to wait 5 s per subscription).
func TestManagerAndBrokerStoppedTogether(t *testing.T) {
	for run := range 5 {
		srv, err := localiot.New(localiot.Options{})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		srvDone := make(chan error, 1)
		go func() { srvDone <- srv.Start(ctx) }()
		<-srv.Ready()
		m, err := reconciler.NewManager(fastConfig(srv.Endpoints().Plain), reconciler.Options{Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		targetDevice(t, m, "together-1")
		mgrDone := make(chan error, 1)
		go func() { mgrDone <- m.Start(ctx) }()
		if err := m.Conn().AwaitConnection(t.Context()); err != nil {
			t.Fatal(err)
		}
		h := shadow(t, app(t, srv.Endpoints().Plain), "together-1")
		convergeTo(t, h, run)

		cancel()
		select {
		case err := <-mgrDone:
			if err != nil {
				t.Fatalf("manager: %v", err)
			}
		case <-time.After(4 * time.Second):
			t.Fatalf("run %d: the manager was still shutting down 4 s after the ctx it shares with the broker ended", run)
		}
		<-srvDone
	}
}
