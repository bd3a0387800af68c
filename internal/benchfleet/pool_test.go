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
	if rep.Framework.ReceivedPerUpdate < 2 {
		t.Errorf("%v messages in per update on two connections; each receives every documents message", rep.Framework.ReceivedPerUpdate)
	}
}
