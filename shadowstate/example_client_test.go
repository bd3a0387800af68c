package shadowstate_test

import (
	"context"
	"fmt"

	"github.com/shadowsync/shadowsync/localiot"
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
	client, _ := shadowstate.NewClient(conn, shadowstate.ClientOptions{})
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
