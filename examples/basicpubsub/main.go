// Basicpubsub is the basicPubSub sample of the AWS IoT Device SDK for Python v1, in Go:
// it subscribes to a topic, publishes a few messages to it at QoS 1, and prints each
// one as it arrives.
//
// The Python sample (samples/basicPubSub/basicPubSub.py of the AWS IoT Device SDK for
// Python v1) registers a callback with AWSIoTMQTTClient.subscribe and calls publish in a
// loop; here the callback is a transport.HandlerFunc and the connection a
// transport.Conn.
//
// Against an embedded localiot (plain MQTT, nothing to set up):
//
//	go run ./examples/basicpubsub
//
// Against AWS IoT with a device certificate:
//
//	go run ./examples/basicpubsub --endpoint mqtts://XXXX-ats.iot.eu-west-1.amazonaws.com:8883 \
//	    --ca AmazonRootCA1.pem --cert device.pem.crt --key private.pem.key
//
// or over WebSocket with the standard AWS credential chain:
//
//	go run ./examples/basicpubsub --endpoint wss://XXXX-ats.iot.eu-west-1.amazonaws.com/mqtt
//
// Against `shadowsync serve`: --endpoint mqtt://127.0.0.1:1883.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/shadowsync/shadowsync/cmdkit"
	"github.com/shadowsync/shadowsync/transport"
)

func main() { cmdkit.Main(run) }

// message is what the sample publishes, as the Python sample does.
type message struct {
	Message  string `json:"message"`
	Sequence int    `json:"sequence"`
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("basicpubsub", flag.ContinueOnError)
	fs.SetOutput(stdout)
	conn := cmdkit.RegisterFlags(fs, "")
	topic := fs.String("topic", "sdk/test/go", "`TOPIC` to subscribe and publish to")
	count := fs.Int("count", 5, "how many messages to publish")
	text := fs.String("message", "Hello World!", "message `TEXT` to publish")
	wait := fs.Duration("wait", 10*time.Second, "how long to wait for the messages to arrive")
	if err := cmdkit.Parse(fs, args); err != nil {
		return err
	}
	if *count < 1 {
		return cmdkit.Usagef("--count must be at least 1")
	}
	out := cmdkit.NewPrinter(stdout)

	target, err := cmdkit.Open(ctx, conn, cmdkit.Options{Listener: cmdkit.Plain})
	if err != nil {
		return err
	}
	defer target.Close()
	c, err := transport.Dial(ctx, target.Config("basicPubSub"))
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	out.Printf("connected to %s as %s", target.Endpoint, c.ClientID())

	// The handler is the Python sample's customCallback: it runs on the subscription's
	// own goroutine, one message at a time, and must not block for long.
	received := make(chan struct{}, *count)
	_, err = c.Subscribe(ctx, *topic, transport.HandlerFunc(func(_ context.Context, m transport.Message) {
		out.Printf("received from %s: %s", m.Topic, m.Payload)
		select {
		case received <- struct{}{}:
		default: // more than we published: someone else uses the topic too
		}
	}), transport.QoS(1))
	if err != nil {
		return err
	}
	out.Printf("subscribed to %s", *topic)

	for i := 1; i <= *count; i++ {
		payload, err := json.Marshal(message{Message: *text, Sequence: i})
		if err != nil {
			return err
		}
		// QoS 1: Publish returns once the broker has acknowledged the message.
		if err := c.Publish(ctx, *topic, payload, transport.QoS(1)); err != nil {
			return fmt.Errorf("publish %d: %w", i, err)
		}
		out.Printf("published to %s: %s", *topic, payload)
	}

	deadline := time.After(*wait)
	for got := 0; got < *count; got++ {
		select {
		case <-received:
		case <-deadline:
			return fmt.Errorf("received %d of %d messages in %v", got, *count, *wait)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	out.Printf("all %d messages came back", *count)
	return nil
}
