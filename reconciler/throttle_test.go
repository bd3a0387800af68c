package reconciler_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shadowsync/shadowsync/internal/testserver"
	"github.com/shadowsync/shadowsync/localiot"
	"github.com/shadowsync/shadowsync/reconciler"
	"github.com/shadowsync/shadowsync/transport"
)

// A publish cap that slows the manager down shows in its metrics: with a cap of 5
// publishes a second (after a one-second burst), echoing 8 things delays reports,
// and shadowsync_publishes_throttled_total and the wait it caused count them; the
// things still converge.
func TestThrottledPublishesAreCounted(t *testing.T) {
	srv := testserver.Start(t, localiot.Options{})
	reg := prometheus.NewRegistry()
	m, err := reconciler.NewManager(transport.Config{Endpoint: srv.Endpoints().Plain, MaxPublishRate: 5},
		reconciler.Options{Registry: reg, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	things := make([]string, 8)
	for i := range things {
		things[i] = fmt.Sprintf("slow-%02d", i)
	}
	if _, err := reconciler.Echo(m, things...); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- m.Start(ctx) }()
	defer func() { cancel(); <-done }()
	if got := counterValue(t, reg, "shadowsync_publishes_throttled_total"); got != 0 {
		t.Errorf("throttled before any publish = %v", got)
	}
	a := app(t, srv.Endpoints().Plain)
	for _, th := range things {
		if _, err := shadow(t, a, th).UpdateDesired(t.Context(), map[string]any{"on": true}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 30*time.Second, func() error {
		for _, th := range things {
			doc, err := shadow(t, a, th).Get(t.Context())
			if err != nil {
				return err
			}
			if doc.State.Delta != nil {
				return fmt.Errorf("%s still has a delta: %v", th, doc.State.Delta)
			}
		}
		return nil
	})
	if n := counterValue(t, reg, "shadowsync_publishes_throttled_total"); n == 0 {
		t.Error("shadowsync_publishes_throttled_total = 0 after 8 reports and their reads at 5/s")
	}
	if s := counterValue(t, reg, "shadowsync_publish_throttle_seconds_total"); s <= 0 {
		t.Errorf("shadowsync_publish_throttle_seconds_total = %v", s)
	}
}
