package shadowclient_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/shadowsync/shadowsync/localiot"
	"github.com/shadowsync/shadowsync/shadowclient"
	"github.com/shadowsync/shadowsync/shadowstate"
	"github.com/shadowsync/shadowsync/transport"
)

// A device and an app share a shadow: the app desires a state, the device receives
// the delta and reports what it did.
func ExampleClient() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, _ := localiot.New(localiot.Options{}) // a local AWS IoT on an ephemeral port
	stopped := make(chan error, 1)
	go func() { stopped <- srv.Start(ctx) }()
	<-srv.Ready()

	conn, err := transport.Dial(ctx, transport.Config{Endpoint: srv.Endpoints().Plain})
	if err != nil {
		panic(err)
	}
	client, _ := shadowclient.New(conn, shadowclient.Options{})
	lamp, _ := client.Shadow("lamp-1", "")

	done := make(chan struct{})
	lamp.OnDelta(ctx, func(ctx context.Context, d *shadowstate.DeltaMessage) {
		fmt.Println("device asked for", d.State)
		acc, _ := lamp.UpdateReported(ctx, d.State) // switch the lamp, then report it
		fmt.Println("device reported at version", acc.Version)
		close(done)
	})
	lamp.UpdateDesired(ctx, map[string]any{"on": true}) // as an app would
	<-done

	doc, _ := lamp.Get(ctx)
	fmt.Println("in sync:", doc.State.Delta == nil)

	client.Close(ctx)
	conn.Close(ctx)
	cancel()
	<-stopped
	// Output:
	// device asked for map[on:true]
	// device reported at version 2
	// in sync: true
}

// Optimistic locking: an update that expects a version the shadow is no longer at is
// rejected with 409, an *shadowstate.Error carrying AWS's code and message.
func ExampleExpectVersion() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, _ := localiot.New(localiot.Options{})
	stopped := make(chan error, 1)
	go func() { stopped <- srv.Start(ctx) }()
	<-srv.Ready()
	conn, err := transport.Dial(ctx, transport.Config{Endpoint: srv.Endpoints().Plain})
	if err != nil {
		panic(err)
	}
	client, _ := shadowclient.New(conn, shadowclient.Options{})
	lamp, _ := client.Shadow("lamp-1", "")

	acc, _ := lamp.UpdateReported(ctx, map[string]any{"on": true})
	fmt.Println("version", acc.Version)
	_, _ = lamp.UpdateDesired(ctx, map[string]any{"on": false}) // someone else writes: version 2

	_, err = lamp.UpdateReported(ctx, map[string]any{"level": 10}, shadowclient.ExpectVersion(acc.Version))
	var rejected *shadowstate.Error
	if errors.As(err, &rejected) {
		fmt.Println(rejected.Code, rejected.Message)
	}

	client.Close(ctx)
	conn.Close(ctx)
	cancel()
	<-stopped
	// Output:
	// version 1
	// 409 Version conflict
}
