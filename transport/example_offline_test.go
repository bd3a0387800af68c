package transport_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/shadowsync/shadowsync/localiot"
	"github.com/shadowsync/shadowsync/transport"
)

// The offline queue example of the AWS IoT Device SDK for Python v1's README: a queue
// of 5 and 7 publishes made while offline. With DropOldest the first two are dropped
// and the last five are sent once the connection is up, oldest first.
func ExampleConfig_dropOldest() {
	fmt.Println(offlineRun(transport.DropOldest))
	// Output: delivered [pub_req3 pub_req4 pub_req5 pub_req6 pub_req7]
}

// With DropNewest (the default) the queue keeps the first five and refuses the sixth
// and seventh publish with an error wrapping transport.ErrQueueFull.
func ExampleConfig_dropNewest() {
	fmt.Println(offlineRun(transport.DropNewest))
	// Output:
	// publish 6 refused: publish demo/pub_req6 while offline: new item refused, 5 of 5 slots in use: transport: offline queue full
	// publish 7 refused: publish demo/pub_req7 while offline: new item refused, 5 of 5 slots in use: transport: offline queue full
	// delivered [pub_req1 pub_req2 pub_req3 pub_req4 pub_req5]
}

// offlineRun publishes seven messages on a connection that is not connected yet,
// then connects it and returns what a subscriber receives.
func offlineRun(policy transport.DropPolicy) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv, err := localiot.New(localiot.Options{})
	if err != nil {
		panic(err)
	}
	srvCtx, stopSrv := context.WithCancel(ctx)
	srvDone := make(chan error, 1)
	go func() { srvDone <- srv.Start(srvCtx) }()
	defer func() { stopSrv(); <-srvDone }()
	<-srv.Ready()

	// The device's connection: created, not started, so it is offline.
	device, err := transport.New(transport.Config{
		Endpoint:          srv.Endpoints().Plain,
		OfflineQueueSize:  5,
		OfflineDropPolicy: policy,
		DrainRate:         math.Inf(1), // default 2 Hz: 2 queued publishes per second
	})
	if err != nil {
		panic(err)
	}
	for i := 1; i <= 7; i++ {
		err := device.Publish(ctx, fmt.Sprintf("demo/pub_req%d", i), fmt.Appendf(nil, "pub_req%d", i), transport.QoS(1))
		if errors.Is(err, transport.ErrQueueFull) {
			fmt.Printf("publish %d refused: %v\n", i, err)
		}
	}

	// Someone listening, then the device comes online and drains its queue.
	listener, err := transport.Dial(ctx, transport.Config{Endpoint: srv.Endpoints().Plain})
	if err != nil {
		panic(err)
	}
	defer listener.Close(ctx)
	got := make(chan string, 7)
	if _, err := listener.Subscribe(ctx, "demo/#", transport.HandlerFunc(func(_ context.Context, m transport.Message) {
		got <- string(m.Payload)
	}), transport.QoS(1)); err != nil {
		panic(err)
	}
	go device.Start(ctx)
	defer device.Close(ctx)

	var delivered []string
	for range 5 {
		select {
		case p := <-got:
			delivered = append(delivered, p)
		case <-ctx.Done():
			return fmt.Sprintf("delivered only %v", delivered)
		}
	}
	return fmt.Sprintf("delivered %v", delivered)
}

// The reconnect backoff of the Python SDK v1, min(2^n × base, max), with its defaults.
func ExampleExponentialBackoff() {
	backoff := transport.ExponentialBackoff(transport.DefaultBackoffBase, transport.DefaultBackoffMax, 0)
	for n := range 8 {
		fmt.Print(backoff(n), " ")
	}
	fmt.Println()
	// Output: 1s 2s 4s 8s 16s 32s 32s 32s
}
