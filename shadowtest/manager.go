package shadowtest

import (
	"context"
	"time"

	"github.com/shadowsync/shadowsync/reconciler"
)

// StartManager runs mgr (reconciler.Manager.Start) until the test or suite ends, and
// returns once its connection is online, so that its controllers have subscribed to
// their shadows' deltas. At the end it stops mgr and fails t if Start returned an
// error or did not return within a minute. It fails t if mgr is not online within
// 30 s.
func StartManager(t TB, mgr *reconciler.Manager) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("shadowtest: manager: %v", err)
			}
		case <-time.After(time.Minute):
			t.Fatalf("shadowtest: manager did not stop within a minute of its ctx ending")
		}
	})
	online, stop := context.WithTimeout(ctx, startTimeout)
	defer stop()
	if err := mgr.Conn().AwaitConnection(online); err != nil {
		t.Fatalf("shadowtest: manager not online: %v", err)
	}
}
