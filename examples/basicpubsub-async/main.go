// Basicpubsub-async is the basicPubSubAsync sample of the AWS IoT Device SDK for Python
// v1, in Go: connect, subscribe, publish and unsubscribe without blocking, each
// acknowledgement (CONNACK, SUBACK, PUBACK, UNSUBACK) reported as it completes.
//
// The Python sample (samples/basicPubSub/basicPubSubAsync.py of the AWS IoT Device SDK
// for Python v1) passes ackCallback functions to connectAsync, subscribeAsync,
// publishAsync and unsubscribeAsync. In Go the blocking call is the API and
// asynchrony is the caller's: each request runs in its own goroutine and reports its
// acknowledgement on a channel, and one loop owns the program's state and reacts to
// acks, messages and the online callback as they come. The connection itself is
// started the same way: transport.New, then Start in a goroutine, with OnOnline as
// the CONNACK callback.
//
// Against an embedded localiot:
//
//	go run ./examples/basicpubsub-async
//
// Against AWS IoT:
//
//	go run ./examples/basicpubsub-async --endpoint mqtts://XXXX-ats.iot.eu-west-1.amazonaws.com:8883 \
//	    --ca AmazonRootCA1.pem --cert device.pem.crt --key private.pem.key
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/shadowsync/shadowsync/cmdkit"
	"github.com/shadowsync/shadowsync/transport"
)

func main() { cmdkit.Main(run) }

// ack is the completion of one asynchronous request: the Go form of the Python sample's
// ackCallback(mid, data). Err is nil when the broker acknowledged it.
type ack struct {
	kind string // SUBACK, PUBACK or UNSUBACK
	seq  int    // which publish, for PUBACK
	err  error
}

// async runs request on its own goroutine and reports its acknowledgement on acks,
// which must have room for it.
func async(ctx context.Context, acks chan<- ack, kind string, seq int, request func(context.Context) error) {
	go func() { acks <- ack{kind: kind, seq: seq, err: request(ctx)} }()
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("basicpubsub-async", flag.ContinueOnError)
	fs.SetOutput(stdout)
	flags := cmdkit.RegisterFlags(fs, "")
	topic := fs.String("topic", "sdk/test/go/async", "`TOPIC` to subscribe and publish to")
	count := fs.Int("count", 5, "how many messages to publish")
	wait := fs.Duration("wait", 10*time.Second, "how long the whole exchange may take")
	if err := cmdkit.Parse(fs, args); err != nil {
		return err
	}
	if *count < 1 {
		return cmdkit.Usagef("--count must be at least 1")
	}
	out := cmdkit.NewPrinter(stdout)
	target, err := cmdkit.Open(ctx, flags, cmdkit.Options{Listener: cmdkit.Plain})
	if err != nil {
		return err
	}
	defer target.Close()

	online := make(chan struct{}, 1)
	messages := make(chan transport.Message, *count)
	acks := make(chan ack, *count+2) // every request's ack fits: no goroutine waits
	cfg := target.Config("basicPubSubAsync")
	cfg.OnOnline = func() { // the CONNACK callback; also called after each reconnect
		select {
		case online <- struct{}{}:
		default:
		}
	}
	cfg.OnOffline = func(err error) { out.Printf("offline: %v", err) }
	c, err := transport.New(cfg)
	if err != nil {
		return err
	}
	go c.Start(ctx) // connectAsync: returns at once, OnOnline reports the connection
	defer c.Close(context.WithoutCancel(ctx))
	out.Printf("connecting to %s as %s", target.Endpoint, c.ClientID())

	var sub *transport.Subscription
	handler := transport.HandlerFunc(func(_ context.Context, m transport.Message) {
		select { // the messageCallback: hand the message to the loop, never block
		case messages <- m:
		default: // more than we published: someone else uses the topic too
		}
	})
	pubacks, received, deadline := 0, 0, time.After(*wait)
	subscribed, unsubscribing := false, false
	for {
		select {
		case <-online:
			out.Printf("CONNACK: online")
			if !subscribed {
				subscribed = true
				async(ctx, acks, "SUBACK", 0, func(ctx context.Context) (err error) {
					sub, err = c.Subscribe(ctx, *topic, handler, transport.QoS(1))
					return err
				})
			}
		case a := <-acks:
			if a.err != nil {
				return fmt.Errorf("%s %d: %w", a.kind, a.seq, a.err)
			}
			switch a.kind {
			case "SUBACK": // sub is set: the ack's channel send happened after it
				out.Printf("SUBACK: subscribed to %s", *topic)
				for i := 1; i <= *count; i++ {
					payload := fmt.Appendf(nil, `{"message":"New Message %d"}`, i)
					async(ctx, acks, "PUBACK", i, func(ctx context.Context) error {
						return c.Publish(ctx, *topic, payload, transport.QoS(1))
					})
				}
				out.Printf("published %d messages without waiting", *count)
			case "PUBACK":
				pubacks++
				out.Printf("PUBACK: message %d", a.seq)
			case "UNSUBACK":
				out.Printf("UNSUBACK: unsubscribed from %s; %d PUBACKs, %d messages", *topic, pubacks, received)
				return nil
			}
		case m := <-messages:
			received++
			out.Printf("message on %s: %s", m.Topic, m.Payload)
		case <-deadline:
			return fmt.Errorf("after %v: %d of %d PUBACKs and messages %d of %d", *wait, pubacks, *count, received, *count)
		case <-ctx.Done():
			return ctx.Err()
		}
		if pubacks == *count && received == *count && !unsubscribing {
			unsubscribing = true
			async(ctx, acks, "UNSUBACK", 0, sub.Unsubscribe)
		}
	}
}
