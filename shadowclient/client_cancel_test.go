package shadowclient_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/shadowsync/shadowsync/internal/testserver"
	"github.com/shadowsync/shadowsync/localiot"
	"github.com/shadowsync/shadowsync/shadowclient"
	"github.com/shadowsync/shadowsync/shadowstate"
)

// The caller's own deadline is reported as the caller's: context.DeadlineExceeded,
// not ErrRequestTimeout, which says the client's Timeout ran out.
func TestClientCallerDeadlineIsNotRequestTimeout(t *testing.T) {
	srv := testserver.Start(t, localiot.Options{})
	c := newClient(t, dial(t, srv.Endpoints().Plain, nil), shadowclient.Options{Timeout: time.Minute})
	h := mustShadow(t, c, "Deadline-1", "")
	ctx, cancel := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
	defer cancel()
	_, err := h.Get(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, shadowclient.ErrRequestTimeout) {
		t.Errorf("Get with an expired caller deadline = %v, want context.DeadlineExceeded and not ErrRequestTimeout", err)
	}
	ctx, cancel = context.WithCancel(t.Context())
	cancel()
	if _, err := h.Get(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Get with a cancelled context = %v, want context.Canceled", err)
	}
}

// A request whose caller gives up while the reply topics are being subscribed must
// not fail the other requests waiting for the same SUBSCRIBE: each request ends for
// its own reasons only.
func TestClientOneCallerCancellingDoesNotFailOthers(t *testing.T) {
	for name, mode := range map[string]shadowclient.Subscriptions{"persistent": shadowclient.Persistent, "per-request": shadowclient.PerRequest} {
		t.Run(name, func(t *testing.T) {
			// The broker holds the SUBACK of the first SUBSCRIBE until released.
			held, release := make(chan struct{}), make(chan struct{})
			var once sync.Once
			srv := testserver.Start(t, localiot.Options{Observe: func(e localiot.Event) {
				if e.Kind == localiot.EventSubscribe {
					once.Do(func() { close(held); <-release })
				}
			}})
			t.Cleanup(func() {
				select {
				case <-release:
				default:
					close(release)
				}
			})
			c := newClient(t, dial(t, srv.Endpoints().Plain, nil), shadowclient.Options{Subscriptions: mode, Wildcards: shadowclient.WildcardsNever})
			h := mustShadow(t, c, "Share-1", "")

			ctx, cancel := context.WithCancel(t.Context())
			first := make(chan error, 1)
			go func() {
				_, err := h.UpdateReported(ctx, map[string]any{"n": 0})
				first <- err
			}()
			select {
			case <-held:
			case <-time.After(wait):
				t.Fatal("no SUBSCRIBE reached the broker")
			}
			var wg sync.WaitGroup
			errs := make([]error, 4)
			for i := range errs {
				wg.Go(func() {
					_, errs[i] = h.UpdateReported(t.Context(), map[string]any{"n": i + 1})
				})
			}
			cancel()
			select {
			case err := <-first:
				if !errors.Is(err, context.Canceled) {
					t.Errorf("cancelled request = %v, want context.Canceled", err)
				}
			case <-time.After(wait):
				t.Fatal("the cancelled request did not return")
			}
			close(release)
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Errorf("request %d failed because another caller cancelled: %v", i+1, err)
				}
			}
			if mode == shadowclient.PerRequest {
				// Every request is over, so no reply filter is left behind (the cancelled
				// request's UNSUBSCRIBE may still be under way).
				eventually(t, wait, func() error {
					if got := c.HeldFilters(); len(got) != 0 {
						return fmt.Errorf("per-request client still holds %v", got)
					}
					return nil
				})
			}
		})
	}
}

// Close ends the client's fleet watches too: their wildcard filters are
// unsubscribed, and no watch can start on a closed client.
func TestClientCloseStopsFleetWatches(t *testing.T) {
	unsubscribed := make(chan []string, 16)
	srv := testserver.Start(t, localiot.Options{Observe: func(e localiot.Event) {
		if e.Kind == localiot.EventUnsubscribe {
			unsubscribed <- e.Filters
		}
	}})
	conn := dial(t, srv.Endpoints().Plain, nil)
	c, err := shadowclient.New(conn, shadowclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	deltas := make(chan shadowstate.ID, 4)
	if _, err := c.WatchFleet(t.Context(), shadowclient.FleetWatch{
		OnDelta:     func(_ context.Context, id shadowstate.ID, _ *shadowstate.DeltaMessage) { deltas <- id },
		OnDocuments: func(context.Context, shadowstate.ID, *shadowstate.DocumentsMessage) {},
	}); err != nil {
		t.Fatal(err)
	}
	operator := newClient(t, dial(t, srv.Endpoints().Plain, nil), shadowclient.Options{})
	if _, err := mustShadow(t, operator, "Fleet-1", "").UpdateDesired(t.Context(), map[string]any{"on": true}); err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-deltas:
		if id.Thing != "Fleet-1" {
			t.Fatalf("delta for %v, want Fleet-1", id)
		}
	case <-time.After(wait):
		t.Fatal("the fleet watch got no delta")
	}

	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	if err := c.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	var gone []string
	for len(gone) < 2 {
		select {
		case fs := <-unsubscribed:
			gone = append(gone, fs...)
		case <-time.After(wait):
			t.Fatalf("after Close, unsubscribed only %v", gone)
		}
	}
	slices.Sort(gone)
	want := []string{"$aws/things/+/shadow/update/delta", "$aws/things/+/shadow/update/documents"}
	if !slices.Equal(gone, want) {
		t.Errorf("Close unsubscribed %v, want %v", gone, want)
	}
	if _, err := c.WatchFleet(ctx, shadowclient.FleetWatch{OnDelta: func(context.Context, shadowstate.ID, *shadowstate.DeltaMessage) {}}); !errors.Is(err, shadowclient.ErrClientClosed) {
		t.Errorf("WatchFleet on a closed client = %v, want ErrClientClosed", err)
	}
}
