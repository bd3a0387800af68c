package reconciler_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shadowsync/shadowsync/internal/testserver"
	"github.com/shadowsync/shadowsync/localiot"
	"github.com/shadowsync/shadowsync/reconciler"
	"github.com/shadowsync/shadowsync/shadowclient"
	"github.com/shadowsync/shadowsync/shadowstate"
)

// Re-reads asked for while one is running collapse into a single pending re-read:
// with a resync period shorter than a slow re-read, they must not pile up (each
// would hold a goroutine and then re-read every shadow again).
func TestResyncsDoNotPileUp(t *testing.T) {
	srv := testserver.Start(t, localiot.Options{})
	const things = 3
	var gets atomic.Int32
	hold := make(chan struct{})
	var holdOnce sync.Once
	release := func() { holdOnce.Do(func() { close(hold) }) }
	t.Cleanup(release)
	blocked := make(chan struct{}, things)
	m, err := reconciler.NewManager(fastConfig(srv.Endpoints().Plain), reconciler.Options{
		Logger: testLogger(t),
		Client: shadowclient.Options{Observe: func(op shadowstate.Op, _ string, _ time.Duration) {
			if op != shadowstate.OpGet {
				return
			}
			gets.Add(1)
			select {
			case <-hold:
			default:
				blocked <- struct{}{}
				<-hold // the first re-read is slow
			}
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for i := range things {
		names = append(names, fmt.Sprintf("pile-%d", i))
	}
	if _, err := reconciler.Register(m, reconciler.ControllerOptions{Things: names},
		reconciler.ReconcilerFunc[nDev](func(context.Context, reconciler.Request[nDev]) (reconciler.Result, error) {
			return reconciler.Result{}, nil
		})); err != nil {
		t.Fatal(err)
	}
	run(t, m)
	select {
	case <-blocked: // the re-read on connecting is under way, and stuck
	case <-time.After(wait):
		t.Fatal("no re-read started")
	}
	for i := range 50 {
		reconciler.ResyncAll(t.Context(), m, fmt.Sprintf("tick %d", i))
	}
	release()
	// The stuck re-read finishes, then exactly one more runs: 2 × things reads.
	eventually(t, wait, func() error {
		if n := gets.Load(); n < 2*things {
			return fmt.Errorf("%d shadow reads so far, want %d", n, 2*things)
		}
		return nil
	})
	// And no more trickle in afterwards.
	consistently(t, 500*time.Millisecond, func() error {
		if n := gets.Load(); n != 2*things {
			return fmt.Errorf("%d shadow reads, want %d: re-reads piled up", n, 2*things)
		}
		return nil
	})
}
