package benchfleet

import (
	"testing"
	"time"

	"github.com/shadowsync/shadowsync/internal/testserver"
	"github.com/shadowsync/shadowsync/localiot"
)

// RunPool runs the framework on a pool of two connections against a server enforcing
// AWS IoT's 100 publishes a second per connection: every round converges and the
// report describes the pool and its quota.
func TestRunPoolUnderAWSLimits(t *testing.T) {
	srv := testserver.Start(t, localiot.Options{Limits: localiot.Limits{MaxPublishRate: 100}})
	rep, err := RunPool(t.Context(), Options{
		Endpoint: srv.Endpoints().Plain, Things: 60, Rounds: 1, Workers: 4, Pool: 2,
		AWSLimits: true, MaxPublishRate: 95, RoundTimeout: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Pool != 2 || rep.QuotaLimitedPerSec != 200 || rep.MaxPublishRate != 95 || rep.Framework.Updates != 60 {
		t.Errorf("report %+v", rep)
	}
	// A sharing pool receives each documents message once, on one of its
	// connections: two per update (the app's change and the report's), give or take
	// those of a round's last reports, which may land after it is over. An unshared
	// pool would get about four; a pool whose start re-read every shadow twice, or
	// whose connections kept named filters on the broker beside the group's
	// wildcards, got 2.3–2.6 in one run in 30 to 60 on a loaded machine. A
	// documents message overtaken on the group costs a read (one more message).
	n := rep.Framework.ReceivedPerUpdate
	t.Logf("%.2f messages in per update", n)
	if n <= 1.8 || n >= 2.2 {
		t.Errorf("%v messages in per update on two connections; want 2, and under 2.2 (an unshared pool gets about 4)", n)
	}
}
