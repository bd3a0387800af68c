package transport_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shadowsync/shadowsync/internal/testserver"
	"github.com/shadowsync/shadowsync/localiot"
	"github.com/shadowsync/shadowsync/transport"
)

// stuckHandler is a handler that, on its first message, signals started and then
// blocks, ignoring its ctx, until the test releases it.
type stuckHandler struct {
	started     chan struct{}
	release     chan struct{}
	startOnce   sync.Once
	releaseOnce sync.Once
	// closeReturned is set by the test when Close returns; the handler reads it
	// when released, into returnedAtRelease.
	closeReturned     atomic.Bool
	returnedAtRelease chan bool
}

func newStuckHandler() *stuckHandler {
	return &stuckHandler{started: make(chan struct{}), release: make(chan struct{}), returnedAtRelease: make(chan bool, 1)}
}

func (h *stuckHandler) HandleMessage(context.Context, transport.Message) {
	first := false
	h.startOnce.Do(func() { first = true; close(h.started) })
	if !first {
		return
	}
	<-h.release
	h.returnedAtRelease <- h.closeReturned.Load()
}

func (h *stuckHandler) unblock() { h.releaseOnce.Do(func() { close(h.release) }) }

// startStuck connects a Conn with a stuckHandler on filter, makes the handler run,
// and returns the Conn with a channel that receives Start's result. The handler is
// released and the Conn closed when the test ends.
func startStuck(t *testing.T, filter string) (*transport.Conn, *stuckHandler, <-chan error) {
	t.Helper()
	c, err := transport.New(transport.Config{Endpoint: testserver.Start(t, localiot.Options{}).Endpoints().Plain})
	if err != nil {
		t.Fatal(err)
	}
	startDone := make(chan error, 1)
	go func() { startDone <- c.Start(context.Background()) }()
	h := newStuckHandler()
	t.Cleanup(func() {
		h.unblock()
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if err := c.Close(ctx); err != nil {
			t.Errorf("Close at cleanup: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	if err := c.AwaitConnection(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Subscribe(ctx, filter, h, transport.QoS(1)); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx, filter, []byte("x"), transport.QoS(1)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.started:
	case <-time.After(wait):
		t.Fatal("handler did not start")
	}
	return c, h, startDone
}

// awaitStart waits for Start to return: the connection loop has ended and run
// finish, so all Close has left to do is wait for the handlers.
func awaitStart(t *testing.T, startDone <-chan error) {
	t.Helper()
	select {
	case err := <-startDone:
		if err != nil {
			t.Fatalf("Start: %v", err)
		}
	case <-time.After(wait):
		t.Fatal("Start did not return after Close")
	}
}

// TestCloseWaitsForRunningHandlers: Close does not return while a handler that was
// running when the connection loop ended is still running (it returned at once: the
// loop's finish had emptied the router Close waited through).
func TestCloseWaitsForRunningHandlers(t *testing.T) {
	const filter = "close/wait"
	c, h, startDone := startStuck(t, filter)

	closeErr := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		err := c.Close(ctx)
		h.closeReturned.Store(true)
		closeErr <- err
	}()
	awaitStart(t, startDone)
	// Consistently: Close stays blocked while the handler runs.
	select {
	case err := <-closeErr:
		t.Fatalf("Close returned (%v) while the handler for %q was still running", err, filter)
	case <-time.After(300 * time.Millisecond):
	}

	h.unblock()
	if returned := <-h.returnedAtRelease; returned {
		t.Error("Close had returned before the running handler was released")
	}
	select {
	case err := <-closeErr:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(wait):
		t.Fatal("Close did not return after the handler ended")
	}
	// Idempotent: a later Close, even with an ended ctx, has nothing left to wait for.
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Close(ended); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestCloseContextEndsWhileHandlerRuns: when Close's ctx ends while a handler still
// runs, Close returns ctx's error naming the handler's filter; once the handler has
// ended, Close succeeds.
func TestCloseContextEndsWhileHandlerRuns(t *testing.T) {
	const filter = "close/stuck"
	c, h, startDone := startStuck(t, filter)
	closeEndsWhileRunning(t, c, h, startDone, filter)
}

// TestCloseWaitsForUnsubscribedHandlers: a handler removed by Unsubscribe while it
// runs is still waited for by Close.
func TestCloseWaitsForUnsubscribedHandlers(t *testing.T) {
	const filter = "close/unsubscribed"
	c, h, startDone := startStuck(t, filter)
	if err := c.Unsubscribe(t.Context(), filter); err != nil {
		t.Fatal(err)
	}
	closeEndsWhileRunning(t, c, h, startDone, filter)
}

// closeEndsWhileRunning stops c's connection loop, checks that Close with a ctx
// ending while h runs fails naming filter, then releases h and checks that Close
// succeeds.
func closeEndsWhileRunning(t *testing.T, c *transport.Conn, h *stuckHandler, startDone <-chan error, filter string) {
	t.Helper()
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	_ = c.Close(ended) // stops the connection loop; fails, as it cannot wait for it
	awaitStart(t, startDone)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := c.Close(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), `"`+filter+`"`) {
		t.Errorf("Close with a ctx that ends while the handler runs = %v; want context.DeadlineExceeded naming %q", err, filter)
	}

	h.unblock()
	ctx, cancel = context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := c.Close(ctx); err != nil {
		t.Errorf("Close after the handler ended: %v", err)
	}
}
