package reconciler_test

import (
	"context"
	"encoding/json"
	"time"

	"github.com/shadowsync/shadowsync/localiot"
	"github.com/shadowsync/shadowsync/reconciler"
	"github.com/shadowsync/shadowsync/shadowclient"
	"github.com/shadowsync/shadowsync/shadowstate"
	"github.com/shadowsync/shadowsync/transport"
)

// The helpers below keep the examples about the framework: a local AWS IoT to run
// against, an app that desires state, and waiting for the device to report it.

// localIoT starts a local AWS IoT in-process, plain MQTT on an ephemeral loopback
// port, and returns its endpoint and a function that stops it.
func localIoT() (endpoint string, stop func()) {
	srv, err := localiot.New(localiot.Options{})
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Start(ctx) }()
	select {
	case <-srv.Ready():
	case err := <-done:
		panic(err)
	}
	return srv.Endpoints().Plain, func() { cancel(); <-done }
}

// startManager runs m until the returned function is called, which stops it and
// waits for Start to return. It returns once m's connection is online.
func startManager(m *reconciler.Manager) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Start(ctx) }()
	awaitCtx, cancelAwait := context.WithTimeout(ctx, 10*time.Second)
	defer cancelAwait()
	if err := m.Conn().AwaitConnection(awaitCtx); err != nil {
		panic(err)
	}
	return func() {
		cancel()
		if err := <-done; err != nil {
			panic(err)
		}
	}
}

// appShadow connects to endpoint as an app would, with a connection and a shadow
// client of its own, and returns the shadow of thing and a function that
// disconnects.
func appShadow(ctx context.Context, endpoint, thing string) (*shadowclient.Handle, func()) {
	conn, err := transport.Dial(ctx, transport.Config{Endpoint: endpoint, ClientID: "app"})
	if err != nil {
		panic(err)
	}
	client, err := shadowclient.New(conn, shadowclient.Options{})
	if err != nil {
		panic(err)
	}
	h, err := client.Shadow(thing, "")
	if err != nil {
		panic(err)
	}
	return h, func() {
		ctx := context.WithoutCancel(ctx)
		_ = client.Close(ctx)
		_ = conn.Close(ctx)
	}
}

// waitFor returns the shadow's document once ok holds for it, watching its
// documents messages; it panics after 10 s.
func waitFor(ctx context.Context, h *shadowclient.Handle, ok func(*shadowstate.Document) bool) *shadowstate.Document {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	changed := make(chan struct{}, 1)
	stop, err := h.OnDocuments(ctx, func(context.Context, *shadowstate.DocumentsMessage) {
		select {
		case changed <- struct{}{}:
		default:
		}
	})
	if err != nil {
		panic(err)
	}
	defer stop()
	for {
		doc, err := h.Get(ctx)
		if err == nil && ok(doc) {
			return doc
		}
		select {
		case <-changed:
		case <-ctx.Done():
			panic("shadow not as expected within 10s")
		}
	}
}

// inSync reports whether desired and reported agree.
func inSync(doc *shadowstate.Document) bool {
	return doc.State.Desired != nil && shadowstate.Delta(doc.State.Desired, doc.State.Reported) == nil
}

// jsonText returns v as one line of JSON, keys sorted.
func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}
