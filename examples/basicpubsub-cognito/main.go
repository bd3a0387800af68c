// Basicpubsub-cognito is the basicPubSub_CognitoSTS sample of the AWS IoT Device SDK
// for Python v1, in Go: it gets temporary credentials for an unauthenticated identity
// of an Amazon Cognito identity pool, connects to AWS IoT over WebSocket with a
// SigV4-signed URL made with them, and runs the basicPubSub exchange: subscribe,
// publish, print what arrives.
//
// The Python sample (samples/basicPubSub/basicPubSub_CognitoSTS.py of the AWS IoT
// Device SDK for Python v1) calls boto3's cognito-identity get_id and
// get_credentials_for_identity once and hands the keys to configureIAMCredentials, so
// its WebSocket reconnects fail once they expire. Here the Cognito calls are an
// aws.CredentialsProvider (cognito.go) behind aws.NewCredentialsCache, which transport
// asks on every connect: expiring credentials are renewed.
//
// Against AWS IoT (the pool must allow unauthenticated identities, and its
// unauthenticated role must allow iot:Connect, iot:Publish, iot:Subscribe and
// iot:Receive):
//
//	go run ./examples/basicpubsub-cognito --endpoint wss://XXXX-ats.iot.eu-west-1.amazonaws.com/mqtt \
//	    --identity-pool-id eu-west-1:01234567-89ab-cdef-0123-456789abcdef
//
// Without --endpoint it runs against an embedded localiot's secure WebSocket listener.
// Cognito is then NOT called unless --identity-pool-id is given: a static provider of
// generated temporary-style credentials (key, secret and session token) stands in for
// it, and the embedded listener accepts exactly those. Everything after the provider
// (signing, session token, WebSocket, MQTT) is the same code as against AWS:
//
//	go run ./examples/basicpubsub-cognito
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/shadowsync/shadowsync/cmdkit"
	"github.com/shadowsync/shadowsync/transport"
)

func main() { cmdkit.Main(run) }

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("basicpubsub-cognito", flag.ContinueOnError)
	fs.SetOutput(stdout)
	flags := cmdkit.RegisterFlags(fs, "")
	poolID := fs.String("identity-pool-id", "", "Cognito identity pool `ID` (REGION:UUID); required with --endpoint")
	cognitoEndpoint := fs.String("cognito-endpoint", "", "Cognito Identity endpoint `URL` (default: the region's public endpoint)")
	topic := fs.String("topic", "sdk/test/go/cognito", "`TOPIC` to subscribe and publish to")
	count := fs.Int("count", 5, "how many messages to publish")
	if err := cmdkit.Parse(fs, args); err != nil {
		return err
	}
	if *count < 1 {
		return cmdkit.Usagef("--count must be at least 1")
	}

	out := cmdkit.NewPrinter(stdout)
	var provider aws.CredentialsProvider
	switch {
	case *poolID != "":
		var err error
		if provider, err = newCognitoCredentials(*poolID, flags.Region, *cognitoEndpoint); err != nil {
			return cmdkit.Usagef("%v", err)
		}
	case flags.Endpoint != "":
		return cmdkit.Usagef("--identity-pool-id is required with --endpoint")
	default:
		// The stand-in for Cognito on the embedded localiot: fixed credentials of the
		// same shape as Cognito's, session token included.
		out.Printf("no --identity-pool-id: static credentials stand in for Cognito")
		provider = credentials.NewStaticCredentialsProvider("ASIALOCALCOGNITO", "local-cognito-secret", "local-cognito-session-token")
	}
	return pubSub(ctx, out, flags, provider, *topic, *count)
}

// pubSub connects over WebSocket with credentials from provider and runs the
// basicPubSub exchange. It does not care where the credentials come from.
func pubSub(ctx context.Context, out *cmdkit.Printer, flags *cmdkit.Flags, provider aws.CredentialsProvider, topic string, count int) error {
	target, err := cmdkit.Open(ctx, flags, cmdkit.Options{Listener: cmdkit.WebSocket, Credentials: provider})
	if err != nil {
		return err
	}
	defer target.Close()
	creds, err := provider.Retrieve(ctx) // cached: the connection below reuses them
	if err != nil {
		return err
	}
	out.Printf("credentials from %s: access key %s, session token %t", creds.Source, creds.AccessKeyID, creds.SessionToken != "")

	c, err := transport.Dial(ctx, target.Config("basicPubSub_CognitoSTS"))
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	out.Printf("connected to %s over WebSocket as %s", target.Endpoint, c.ClientID())

	received := make(chan struct{}, count)
	_, err = c.Subscribe(ctx, topic, transport.HandlerFunc(func(_ context.Context, m transport.Message) {
		out.Printf("received from %s: %s", m.Topic, m.Payload)
		select {
		case received <- struct{}{}:
		default:
		}
	}), transport.QoS(1))
	if err != nil {
		return err
	}
	for i := 1; i <= count; i++ {
		payload := fmt.Appendf(nil, `{"message":"Hello from Cognito","sequence":%d}`, i)
		if err := c.Publish(ctx, topic, payload, transport.QoS(1)); err != nil {
			return fmt.Errorf("publish %d: %w", i, err)
		}
	}
	deadline := time.After(10 * time.Second)
	for got := 0; got < count; got++ {
		select {
		case <-received:
		case <-deadline:
			return fmt.Errorf("received %d of %d messages in 10s", got, count)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	out.Printf("all %d messages came back", count)
	return nil
}
