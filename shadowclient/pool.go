package shadowclient

import (
	"errors"
	"strings"
	"sync/atomic"
)

// Pool joins the shadow clients of several connections of one process — a
// connection pool, each connection carrying the shadows of its own things — so that
// each message of their wildcard filters reaches the process once instead of once
// per connection.
//
// MQTT cannot subscribe to "my share of $aws/things/+": once a pooled client moves
// to the wildcard filters (WildcardsAuto past its FilterBudget, or WildcardsAlways),
// every connection would receive every thing's messages. In a pool of two members
// or more, the clients subscribe to their wildcard filters as MQTT shared
// subscriptions, $share/<group>/<filter>, so the broker hands each message to one
// connection of the group, and the client that receives a message about a thing
// another member owns hands it to that member, which dispatches it as if it had
// arrived on its own connection: to its handles' callbacks and to its requests
// waiting for the reply (clientToken) or for the documents message
// (UpdateByDocuments). Named filters stay per connection and unshared: they name the
// member's own shadows only. A closed member receives nothing more: what the others
// receive for its things is dropped.
//
// The broker must deliver the $aws topics to shared subscriptions (AWS IoT and
// localiot do; mosquitto 2.0 never delivers topics beginning with '$' to them):
// elsewhere, do not use a Pool.
//
// Create it with NewPool, give it to each member's Options.Pool, and name the
// members with Set once the clients exist. It is safe for concurrent use.
type Pool struct {
	group   string
	route   func(thing string, n int) int
	members atomic.Pointer[[]*Client]
}

// NewPool returns a pool without members whose wildcard filters are shared in group
// (the MQTT shared-subscription group: unique to this process's pool, the same for
// its members). route says which member, of n, owns thing's shadows (a thing's
// shadows must all be requested through that member's client), as an index in the
// order of Set.
func NewPool(group string, route func(thing string, n int) int) (*Pool, error) {
	if group == "" || strings.ContainsAny(group, "/+#") {
		return nil, errors.New("shadowclient: NewPool: the group must be non-empty and may not contain '/', '+' or '#'")
	}
	if route == nil {
		return nil, errors.New("shadowclient: NewPool: nil route")
	}
	return &Pool{group: group, route: route}, nil
}

// Set makes clients the members of the pool, in the order route indexes them. Call
// it before the members make requests: until then, and while the pool has fewer than
// two members, each client subscribes unshared and handles what it receives itself.
// A pool can grow: when it comes to two members or more, a member whose wildcard
// filters were subscribed unshared (while it was alone) moves them into the group in
// the background — it subscribes each filter shared, then unsubscribes the unshared
// one — so that each message reaches the pool once; meanwhile a message may arrive
// twice, which changes nothing.
func (p *Pool) Set(clients ...*Client) {
	members := append([]*Client(nil), clients...)
	p.members.Store(&members)
	if len(members) > 1 {
		for _, c := range members {
			c.subs.reshare()
		}
	}
}

// Group returns the shared-subscription group of the pool.
func (p *Pool) Group() string { return p.group }

// Shared reports whether the members' wildcard filters are subscribed shared: the
// pool has two members or more.
func (p *Pool) Shared() bool {
	if p == nil {
		return false
	}
	m := p.members.Load()
	return m != nil && len(*m) > 1
}

// share returns the filter to subscribe for filter: shared when it is a wildcard
// filter and the pool shares.
func (p *Pool) share(filter string) string {
	if !isWildcard(filter) || !p.Shared() {
		return filter
	}
	return "$share/" + p.group + "/" + filter
}

// owner returns the member that owns thing; nil when the pool does not share.
func (p *Pool) owner(thing string) *Client {
	if p == nil {
		return nil
	}
	m := p.members.Load()
	if m == nil || len(*m) < 2 {
		return nil
	}
	i := p.route(thing, len(*m))
	if i < 0 || i >= len(*m) {
		return nil
	}
	return (*m)[i]
}

// ownerOf returns the client that dispatches the messages of thing: the pool member
// owning it, or c.
func (c *Client) ownerOf(thing string) *Client {
	if o := c.opts.Pool.owner(thing); o != nil {
		return o
	}
	return c
}
