package transport_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/shadowsync/shadowsync/localiot"
	"github.com/shadowsync/shadowsync/transport"
)

// MQTT over TLS with X.509 mutual authentication, configured as for AWS IoT's
// port 8883: the root CA, the device's certificate and its private key, as PEM files.
// Here localiot stands in for AWS IoT with certificates it generates.
func ExampleConfig_mutualTLS() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dir, err := os.MkdirTemp("", "certs")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	certs, err := localiot.EnsureCerts(dir, "sensor-1") // ca.pem, sensor-1.pem, sensor-1.key, ...
	if err != nil {
		panic(err)
	}
	endpoint, stop := startLocalIoT(ctx, localiot.Options{TLS: certs.TLSListener("")})
	defer stop()

	conn, err := transport.Dial(ctx, transport.Config{
		Endpoint: endpoint.TLS,                       // AWS: mqtts://xxx-ats.iot.<region>.amazonaws.com:8883 (or :443, ALPN x-amzn-mqtt-ca)
		CAFile:   filepath.Join(dir, "ca.pem"),       // AWS: AmazonRootCA1.pem
		CertFile: filepath.Join(dir, "sensor-1.pem"), // AWS: xxx-certificate.pem.crt
		KeyFile:  filepath.Join(dir, "sensor-1.key"), // AWS: xxx-private.pem.key
		ClientID: "sensor-1",
	})
	if err != nil {
		panic(err)
	}
	fmt.Println("online:", conn.IsOnline())
	conn.Close(ctx)

	// Without the CA file the server's certificate does not verify against the
	// system roots, and Dial gives up at once: retrying cannot fix it.
	_, err = transport.Dial(ctx, transport.Config{
		Endpoint: endpoint.TLS,
		CertFile: filepath.Join(dir, "sensor-1.pem"),
		KeyFile:  filepath.Join(dir, "sensor-1.key"),
	})
	fmt.Println("without CAFile:", errors.Is(err, transport.ErrServerCertificate))
	// Output:
	// online: true
	// without CAFile: true
}

// MQTT over WebSocket with a SigV4-presigned URL, as on AWS IoT's wss://HOST/mqtt:
// any aws.CredentialsProvider (here a static one; nil means the standard chain) is
// asked on every connect attempt, and the region comes from Config.Region or the AWS
// IoT host name.
func ExampleConfig_webSocket() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	certs, err := localiot.EnsureCerts("") // in memory
	if err != nil {
		panic(err)
	}
	endpoint, stop := startLocalIoT(ctx, localiot.Options{WebSocket: &localiot.WebSocketListener{
		Certificate: &certs.Server,
		Credentials: []localiot.Credential{{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG"}},
	}})
	defer stop()

	cfg := transport.Config{
		Endpoint:    endpoint.WebSocket, // AWS: wss://xxx-ats.iot.<region>.amazonaws.com/mqtt
		Region:      "eu-west-1",        // AWS: read from the host name when empty
		Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG", ""),
		TLS:         &tls.Config{RootCAs: certs.Pool}, // AWS: leave nil (system roots) or set CAFile
	}
	conn, err := transport.Dial(ctx, cfg)
	if err != nil {
		panic(err)
	}
	fmt.Println("online:", conn.IsOnline())
	conn.Close(ctx)

	// A wrong secret is refused at the WebSocket upgrade; the error names the access
	// key, never the secret.
	cfg.Credentials = credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "not-the-secret", "")
	_, err = transport.Dial(ctx, cfg)
	fmt.Println("wrong secret:", errors.Is(err, transport.ErrNotAuthorized))

	// A custom domain carries no region: New asks for Config.Region.
	_, err = transport.New(transport.Config{Endpoint: "wss://iot.example.com/mqtt"})
	fmt.Println("custom domain:", errors.Is(err, transport.ErrNoRegion))
	// Output:
	// online: true
	// wrong secret: true
	// custom domain: true
}

// Secret keeps a password out of logs, fmt output and errors.
func ExampleSecret() {
	cfg := transport.Config{Username: "device", Password: "hunter2"}
	fmt.Println(cfg.Password)
	fmt.Printf("%v %#v\n", cfg.Password, cfg.Password)
	// Output:
	// [redacted]
	// [redacted] "[redacted]"
}

// startLocalIoT runs localiot with opts until stop is called.
func startLocalIoT(ctx context.Context, opts localiot.Options) (localiot.Endpoints, func()) {
	srv, err := localiot.New(opts)
	if err != nil {
		panic(err)
	}
	srvCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- srv.Start(srvCtx) }()
	select {
	case <-srv.Ready():
	case err := <-done:
		panic(err)
	}
	return srv.Endpoints(), func() { cancel(); <-done }
}
