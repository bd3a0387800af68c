package transport_test

import (
	"context"
	"fmt"
	"time"

	"github.com/shadowsync/shadowsync/localiot"
	"github.com/shadowsync/shadowsync/transport"
)

// Example connects to a local broker, subscribes with a wildcard and publishes at
// QoS 1.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// A local AWS IoT stand-in; against AWS use the mqtts:// or wss:// endpoint.
	srv, err := localiot.New(localiot.Options{})
	if err != nil {
		panic(err)
	}
	srvCtx, stopSrv := context.WithCancel(ctx)
	srvDone := make(chan error, 1)
	go func() { srvDone <- srv.Start(srvCtx) }()
	defer func() { stopSrv(); <-srvDone }()
	<-srv.Ready()

	c, err := transport.Dial(ctx, transport.Config{Endpoint: srv.Endpoints().Plain})
	if err != nil {
		panic(err)
	}
	defer c.Close(ctx)

	got := make(chan string, 1)
	_, err = c.Subscribe(ctx, "greetings/+", transport.HandlerFunc(func(_ context.Context, m transport.Message) {
		got <- m.Topic + ": " + string(m.Payload)
	}), transport.QoS(1))
	if err != nil {
		panic(err)
	}
	if err := c.Publish(ctx, "greetings/world", []byte("hello"), transport.QoS(1)); err != nil {
		panic(err)
	}
	fmt.Println(<-got)
	// Output: greetings/world: hello
}
