package benchfleet

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	mqttc "github.com/eclipse/paho.mqtt.golang"

	"github.com/shadowsync/shadowsync/reconciler"
	"github.com/shadowsync/shadowsync/shadowclient"
	"github.com/shadowsync/shadowsync/shadowstate"
	"github.com/shadowsync/shadowsync/transport"
)

var (
	_ MessageCounter  = (*frameworkSide)(nil)
	_ Side            = (*frameworkSide)(nil)
	_ Side            = (*floorSide)(nil)
	_ ThrottleCounter = (*frameworkSide)(nil)
	_ MessageCounter  = (*floorSide)(nil)
	_ Side            = (*documentsFloorSide)(nil)
	_ MessageCounter  = (*documentsFloorSide)(nil)
)

// frameworkSide is the Side that echoes the fleet with a reconciler.Manager on one
// connection, in this process.
type frameworkSide struct {
	opts     Options
	names    []string
	clientID string
	conns    []*transport.Conn // the manager's pool, once started

	cancel context.CancelFunc
	done   chan error
}

// Start runs the manager and returns once it has read every shadow once (the read
// every manager makes when it comes online), so the rounds do not race its start.
func (f *frameworkSide) Start(ctx context.Context) error {
	var gets atomic.Int64
	allRead := make(chan struct{})
	n := int64(len(f.names))
	observe := func(op shadowstate.Op, _ string, _ time.Duration) {
		if op == shadowstate.OpGet && gets.Add(1) == n {
			close(allRead)
		}
	}
	cfg := transport.Config{Endpoint: f.opts.Endpoint, ClientID: f.clientID, MaxPublishRate: -1}
	if f.opts.AWSLimits {
		cfg.MaxPublishRate = f.opts.frameworkCap()
	}
	m, err := reconciler.NewManager(cfg, reconciler.Options{
		Client: shadowclient.Options{Observe: observe, QoS0: f.opts.QoS0},
		Logger: f.opts.Logger.With("component", "reconciler"),
		Pool:   reconciler.Pool{Size: f.opts.Pool, Unshared: f.opts.PoolUnshared},
	})
	if err != nil {
		return err
	}
	f.conns = []*transport.Conn{m.Conn()}
	for _, name := range f.names {
		if c := m.PoolConn(name); !slices.Contains(f.conns, c) {
			f.conns = append(f.conns, c)
		}
	}
	if f.opts.Workers == 0 {
		_, err = reconciler.Echo(m, f.names...)
	} else {
		// The same reconciler as reconciler.Echo, with more workers.
		_, err = reconciler.Register(m, reconciler.ControllerOptions{Name: "echo", Things: f.names, MaxConcurrentReconciles: f.opts.Workers},
			reconciler.ReconcilerFunc[shadowstate.Object](func(_ context.Context, req reconciler.Request[shadowstate.Object]) (reconciler.Result, error) {
				*req.Reported = shadowstate.Merge(*req.Reported, req.Delta)
				return reconciler.Result{}, nil
			}))
	}
	if err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	f.cancel, f.done = cancel, make(chan error, 1)
	// Every goroutine of the manager carries the profile label role=framework.
	go pprof.Do(runCtx, pprof.Labels("role", "framework"), func(ctx context.Context) { f.done <- m.Start(ctx) })

	timer := time.NewTimer(f.opts.RoundTimeout)
	defer timer.Stop()
	var failure error
	select {
	case <-allRead:
		return nil
	case err := <-f.done:
		f.done <- err // for Stop
		failure = fmt.Errorf("manager stopped at start: %v", err)
	case <-timer.C:
		failure = fmt.Errorf("manager read %d of %d shadows in %v", gets.Load(), n, f.opts.RoundTimeout)
	case <-ctx.Done():
		failure = ctx.Err()
	}
	f.Stop()
	return failure
}

// Messages counts the messages of the manager's connections.
func (f *frameworkSide) Messages() (received, published uint64) {
	for _, c := range f.conns {
		received += c.Received()
		published += c.Sent()
	}
	return received, published
}

// Throttled counts the publishes the manager's connections' caps delayed.
func (f *frameworkSide) Throttled() int64 {
	var n int64
	for _, c := range f.conns {
		p, _ := c.Throttled()
		n += p
	}
	return n
}

func (f *frameworkSide) Stop() {
	if f.cancel == nil {
		return
	}
	f.cancel()
	<-f.done
	f.cancel = nil
}

// deltaFilter is the one filter the floor needs.
const deltaFilter = "$aws/things/+/shadow/update/delta"

// floorSide is the Side that echoes the fleet with a bare paho client doing the
// minimum, in this process: each delta's state is published back as reported state,
// with no version, token or cache.
type floorSide struct {
	opts     Options
	clientID string
	c        mqttc.Client
	// in and out count the deltas received and the reports published.
	in, out atomic.Uint64
}

// Messages counts the deltas the floor received and the reports it published.
func (f *floorSide) Messages() (received, published uint64) { return f.in.Load(), f.out.Load() }

func (f *floorSide) Start(ctx context.Context) error {
	var c mqttc.Client
	var err error
	pprof.Do(ctx, pprof.Labels("role", "floor"), func(ctx context.Context) {
		c, err = connect(ctx, f.opts.Endpoint, f.clientID, nil)
	})
	if err != nil {
		return err
	}
	if err := await(ctx, c.Subscribe(deltaFilter, 1, f.echo), 10*time.Second); err != nil {
		c.Disconnect(0)
		return fmt.Errorf("subscribe %s: %w", deltaFilter, err)
	}
	f.c = c
	return nil
}

func (f *floorSide) Stop() {
	if f.c != nil {
		f.c.Disconnect(100)
		f.c = nil
	}
}

// echo publishes a delta's state back as reported state. It does not wait for
// the PUBACK: paho calls it on its delivery goroutine, which must not block.
func (f *floorSide) echo(c mqttc.Client, m mqttc.Message) {
	f.in.Add(1)
	prefix, ok := strings.CutSuffix(m.Topic(), "/delta")
	if !ok {
		return
	}
	var d struct {
		State json.RawMessage `json:"state"`
	}
	if err := json.Unmarshal(m.Payload(), &d); err != nil || len(d.State) == 0 {
		return
	}
	payload := make([]byte, 0, len(d.State)+24)
	payload = append(payload, `{"state":{"reported":`...)
	payload = append(payload, d.State...)
	payload = append(payload, "}}"...)
	f.out.Add(1)
	c.Publish(prefix, 1, false, payload)
}

// documentsFilter is the one filter the documents floor needs.
const documentsFilter = "$aws/things/+/shadow/update/documents"

// documentsFloorSide is the Side that echoes the fleet with a bare paho client on the
// framework's own protocol, the least a client can receive per change while fencing
// its reports by version: every /update/documents message in (the app's change, and
// its own report's outcome), one report out, fenced at the version the documents
// message carries and tagged with a clientToken by which the client recognises, and
// ignores, its own report's documents message. It keeps no cache, retries nothing and
// uses encoding/json, as a user writing it by hand would. It shows what the
// protocol alone costs, the server included, against the floor that takes the delta.
type documentsFloorSide struct {
	opts     Options
	clientID string
	c        mqttc.Client
	token    string        // the prefix of its clientTokens
	n        atomic.Uint64 // numbers its clientTokens
	// in and out count the documents messages received and the reports published.
	in, out atomic.Uint64
}

// Messages counts the documents messages received and the reports published.
func (f *documentsFloorSide) Messages() (received, published uint64) {
	return f.in.Load(), f.out.Load()
}

func (f *documentsFloorSide) Start(ctx context.Context) error {
	var c mqttc.Client
	var err error
	pprof.Do(ctx, pprof.Labels("role", "floor"), func(ctx context.Context) {
		c, err = connect(ctx, f.opts.Endpoint, f.clientID, nil)
	})
	if err != nil {
		return err
	}
	if err := await(ctx, c.Subscribe(documentsFilter, 1, f.echo), 10*time.Second); err != nil {
		c.Disconnect(0)
		return fmt.Errorf("subscribe %s: %w", documentsFilter, err)
	}
	f.c = c
	return nil
}

func (f *documentsFloorSide) Stop() {
	if f.c != nil {
		f.c.Disconnect(100)
		f.c = nil
	}
}

// echo reports the members of a documents message's desired state that its reported
// state lacks or holds differently, fenced at its version; a documents message of its
// own report, or one with nothing to report, is left alone. Like floorSide.echo it
// does not wait for the PUBACK.
func (f *documentsFloorSide) echo(c mqttc.Client, m mqttc.Message) {
	f.in.Add(1)
	update, ok := strings.CutSuffix(m.Topic(), "/documents")
	if !ok {
		return
	}
	var d struct {
		Current struct {
			State struct {
				Desired  map[string]json.RawMessage `json:"desired"`
				Reported map[string]json.RawMessage `json:"reported"`
			} `json:"state"`
			Version int64 `json:"version"`
		} `json:"current"`
		ClientToken string `json:"clientToken"`
	}
	if err := json.Unmarshal(m.Payload(), &d); err != nil || strings.HasPrefix(d.ClientToken, f.token) {
		return
	}
	diff := map[string]json.RawMessage{}
	for k, v := range d.Current.State.Desired {
		if r, ok := d.Current.State.Reported[k]; !ok || !bytes.Equal(r, v) {
			diff[k] = v
		}
	}
	if len(diff) == 0 {
		return
	}
	payload, err := json.Marshal(map[string]any{
		"state":       map[string]any{"reported": diff},
		"version":     d.Current.Version,
		"clientToken": f.token + strconv.FormatUint(f.n.Add(1), 10),
	})
	if err != nil {
		return
	}
	f.out.Add(1)
	c.Publish(update, 1, false, payload)
}
