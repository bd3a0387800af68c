package reconciler

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/shadowsync/shadowsync/internal/awsiot"
	"github.com/shadowsync/shadowsync/shadowclient"
	"github.com/shadowsync/shadowsync/transport"
)

// Pool spreads a manager's shadows over several connections, for fleets that need
// more than one connection's publish quota (AWS IoT: 100 publishes per second per
// connection, so about 100 reports per second). The zero value is one connection.
//
// Connection 0, the primary, uses the configured client ID and is Manager.Conn,
// with Manager.Client and the job controllers on it; connection i > 0 uses the client
// ID "<ClientID>-<i>", so the connection's policy must allow those client IDs too (a
// policy that allows iot:Connect only to the thing's own name refuses them). Every
// shadow is routed to one connection by a stable hash of its thing's name (FNV-1a
// modulo the pool size; an Auto pool that has grown places the things added since on
// its least loaded connection), so the classic and named shadows of a thing share a
// connection; its reads and reports use that connection only, and its events are
// handled by that connection's shadow client, whichever connection of the pool the
// broker delivered them to (see Unshared). Each connection reconnects on its own,
// and after a reconnect only the shadows routed to it are re-read.
type Pool struct {
	// Size is how many connections the manager opens. Zero and 1 mean one
	// connection, no pool.
	Size int
	// Auto, instead of Size, sizes the pool when Start runs, from the load the
	// controllers are expected to carry: the shadows they manage (their Things, plus
	// FleetShadows) each changing once every ChangeEvery, every change answered by
	// one report, spread over connections loaded to 80 % of their MaxPublishRate (of
	// AWS IoT's 100 publishes per second when the connection has no cap), at most
	// MaxSize. Once started, it grows by the same rule as AddThing adds shadows: the
	// things routed keep their connections, and those added after a growth go to the
	// connection with the fewest listed things. It does not shrink.
	Auto bool
	// ChangeEvery, with Auto, is how often each managed shadow's desired state is
	// expected to change. Required with Auto.
	ChangeEvery time.Duration
	// FleetShadows, with Auto, is how many shadows the fleet controllers are expected
	// to manage: a fleet is discovered as it runs, so Start cannot count it. Zero
	// means none.
	FleetShadows int
	// MaxSize, with Auto, bounds the pool; a larger need is logged and capped. Zero
	// means 64.
	MaxSize int
	// Unshared keeps each pooled connection's wildcard subscriptions to itself. By
	// default a pool of two connections or more subscribes the shadow clients'
	// wildcard filters (which a connection holding more shadows than its filter
	// budget uses) as MQTT shared subscriptions in one group,
	// $share/shadowsync-pool-<ClientID>/..., so the broker delivers each message to
	// one connection, which hands it to the thing's own connection's client in the
	// process (see shadowclient.Pool); unshared fleet controllers join that group
	// too. Set Unshared on brokers that never deliver topics beginning with '$' to
	// shared subscriptions (mosquitto 2.0): then every connection receives every
	// managed thing's messages on the wildcard filters and drops the others', N
	// deliveries per message on a pool of N. An Auto pool needs it there even when it
	// starts with one connection: once it grows, all its connections, the first
	// included, subscribe shared.
	Unshared bool
}

// shares reports whether the pool shares its wildcard subscriptions.
func (p Pool) shares() bool { return (p.Size > 1 || p.Auto) && !p.Unshared }

// poolGroup is the shared-subscription group of the pool of the connection with
// client ID id: the characters an MQTT group name may not hold ('/', '+', '#'),
// and any others outside letters, digits, '-' and '_', become '_'.
func poolGroup(id string) string {
	b := []byte("shadowsync-pool-" + id)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			b[i] = '_'
		}
	}
	return string(b)
}

// Pool defaults and bounds.
const (
	defaultPoolMaxSize = 64
	maxPoolSize        = 1000
	// poolLoad is the share of a connection's publish rate Auto plans to use: the
	// hash spreads shadows only about evenly, and re-reads and retries publish too.
	poolLoad = 0.8
)

// validate checks the pool options.
func (p Pool) validate() error {
	switch {
	case p.Size < 0:
		return fmt.Errorf("Pool.Size is negative (%d)", p.Size)
	case p.Size > maxPoolSize:
		return fmt.Errorf("Pool.Size %d: at most %d connections", p.Size, maxPoolSize)
	case p.Auto && p.Size > 0:
		return errors.New("Pool: set Size or Auto, not both")
	case p.Auto && p.ChangeEvery <= 0:
		return fmt.Errorf("Pool.Auto needs a positive ChangeEvery (how often each shadow changes), got %v", p.ChangeEvery)
	case !p.Auto && (p.ChangeEvery != 0 || p.FleetShadows != 0 || p.MaxSize != 0):
		return errors.New("Pool: ChangeEvery, FleetShadows and MaxSize size an Auto pool; set Auto, or leave them zero")
	case p.FleetShadows < 0 || p.MaxSize < 0:
		return errors.New("Pool: FleetShadows and MaxSize must not be negative")
	case p.MaxSize > maxPoolSize:
		return fmt.Errorf("Pool.MaxSize %d: at most %d connections", p.MaxSize, maxPoolSize)
	}
	return nil
}

// autoSize returns the pool size for shadows changing once every p.ChangeEvery each,
// on connections that may publish rate times a second (no cap: AWS IoT's quota),
// and whether MaxSize capped it.
func (p Pool) autoSize(shadows int, rate float64) (n int, capped bool) {
	if rate <= 0 || math.IsInf(rate, 1) {
		rate = awsiot.MaxPublishesPerSecond
	}
	reports := float64(shadows) / p.ChangeEvery.Seconds()
	n = max(1, int(math.Ceil(reports/(rate*poolLoad))))
	limit := p.MaxSize
	if limit == 0 {
		limit = defaultPoolMaxSize
	}
	if n > limit {
		return limit, true
	}
	return n, false
}

// poolConn is one connection of the pool with the shadow client on it.
type poolConn struct {
	index  int
	label  string // the "conn" label of its metrics
	conn   *transport.Conn
	client *shadowclient.Client

	// Re-reads of the connection's shadows are paced at poolLoad of its publish
	// cap: a connection re-reading thousands of shadows stays under the broker's
	// quota, and leaves room for reports. readGap is 0 when the connection has no cap.
	readGap  time.Duration
	paceMu   sync.Mutex
	readNext time.Time // the earliest time of the next paced read
}

// newPoolConn describes connection i over conn.
func newPoolConn(i int, conn *transport.Conn, client *shadowclient.Client) *poolConn {
	pc := &poolConn{index: i, label: strconv.Itoa(i), conn: conn, client: client}
	if rate := conn.MaxPublishRate(); rate > 0 && !math.IsInf(rate, 1) {
		pc.readGap = time.Duration(float64(time.Second) / (rate * poolLoad))
	}
	return pc
}

// paceRead waits, within ctx, for the connection's next re-read slot.
func (pc *poolConn) paceRead(ctx context.Context) error {
	if pc.readGap == 0 {
		return nil
	}
	pc.paceMu.Lock()
	at := pc.readNext
	if now := time.Now(); at.Before(now) {
		at = now
	}
	pc.readNext = at.Add(pc.readGap)
	pc.paceMu.Unlock()
	d := time.Until(at)
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// route returns the index of the connection that carries thing's shadows in a pool
// of n: FNV-1a of the name modulo n.
func route(thing string, n int) int {
	if n <= 1 {
		return 0
	}
	h := uint32(2166136261) // FNV-1a, 32 bits, as hash/fnv computes it, without allocating
	for i := 0; i < len(thing); i++ {
		h ^= uint32(thing[i])
		h *= 16777619
	}
	return int(h % uint32(n))
}

// poolClientID is the client ID of pooled connection i of a manager whose primary
// connection uses id.
func poolClientID(id string, i int) string {
	if i == 0 {
		return id
	}
	return id + "-" + strconv.Itoa(i)
}
