package benchfleet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"runtime/pprof"
	"strings"
	"sync"
	"time"

	mqttc "github.com/eclipse/paho.mqtt.golang"

	"github.com/shadowsync/shadowsync/internal/awsiot"
)

// acceptedFilter brings the watcher every update/accepted message of every classic
// shadow: the app's desired changes and the echo's reports alike.
const acceptedFilter = "$aws/things/+/shadow/update/accepted"

// thingPrefix starts the name of every thing of the fleet: bench-00000, bench-00001…
const thingPrefix = "bench-"

// modes vary the desired state's string field from round to round.
var modes = [...]string{"heat", "cool", "auto"}

// rig is what both sides share: the app that changes desired state, the watcher that
// times each change, and the fleet's thing names.
type rig struct {
	opts  Options
	names []string
	runID string
	apps  []mqttc.Client // one, or with Options.AWSLimits enough to stay under the quota
	gap   time.Duration  // between the app's publishes; 0 means no pacing
	watch mqttc.Client
	track *tracker
	seq   int64 // seq of the last round started; the seed round is 0
}

func newRig(ctx context.Context, opts Options) (*rig, error) {
	var b [4]byte
	_, _ = rand.Read(b[:])
	r := &rig{opts: opts, runID: hex.EncodeToString(b[:]), seq: -1}
	r.names = make([]string, opts.Things)
	index := make(map[string]int, opts.Things)
	for i := range r.names {
		r.names[i] = fmt.Sprintf("%s%05d", thingPrefix, i)
		index[r.names[i]] = i
	}
	r.track = &tracker{
		index:     index,
		window:    make(chan struct{}, opts.Window),
		desiredAt: make([]time.Time, opts.Things),
		done:      make([]bool, opts.Things),
		lat:       make([]time.Duration, 0, opts.Things*opts.Rounds),
	}
	// The app's and the watcher's goroutines (paho's, started by connect) carry the
	// profile label role=rig, so a profile can leave them out.
	apps := 1
	if opts.AWSLimits {
		// Enough app connections, each at appLoad of the quota, to offer more than
		// the framework's pool may report.
		apps = int(math.Ceil(float64(max(opts.Pool, 1))*awsiot.MaxPublishesPerSecond/appLoad)) + 1
		r.gap = time.Duration(float64(time.Second) / (float64(apps) * appLoad))
	}
	var err error
	pprof.Do(ctx, pprof.Labels("role", "rig"), func(ctx context.Context) {
		for i := range apps {
			var app mqttc.Client
			if app, err = connect(ctx, opts.Endpoint, fmt.Sprintf("bench-app-%s-%d", r.runID, i), nil); err != nil {
				r.close()
				return
			}
			r.apps = append(r.apps, app)
		}
		if r.watch, err = connect(ctx, opts.Endpoint, "bench-watch-"+r.runID, nil); err != nil {
			r.close()
		}
	})
	if err != nil {
		return nil, err
	}
	if err := await(ctx, r.watch.Subscribe(acceptedFilter, 1, r.track.onAccepted), 10*time.Second); err != nil {
		r.close()
		return nil, fmt.Errorf("benchfleet: watcher subscribe: %w", err)
	}
	return r, nil
}

// appLoad is the publishes per second each app connection makes under AWSLimits:
// below the quota, so that the server drops none of them.
const appLoad = 80

// maxCatchUp bounds how far behind its schedule the paced app may publish without
// waiting: a tenth of a second's worth, well inside the broker's one-second burst.
const maxCatchUp = 100 * time.Millisecond

func (r *rig) close() {
	if r.watch != nil {
		r.watch.Disconnect(100)
	}
	for _, app := range r.apps {
		app.Disconnect(100)
	}
}

// round changes every thing's desired state once — seed writes desired and reported
// together instead — keeping at most Options.Window changes unreported at once, and
// waits until every thing has reported the change. It returns the time from the
// first publish to the last report. With measure set, each update's latency is kept.
func (r *rig) round(ctx context.Context, measure, seed bool) (time.Duration, error) {
	r.seq++
	seq := r.seq
	finished := r.track.begin(seq, measure)
	ctx, cancel := context.WithTimeout(ctx, r.opts.RoundTimeout)
	defer cancel()

	tokens := make([]mqttc.Token, 0, len(r.names))
	began := time.Now()
	next := began
	for i, name := range r.names {
		select {
		case r.track.window <- struct{}{}:
		case <-ctx.Done():
			return 0, r.track.stalled(ctx.Err())
		}
		if r.gap > 0 {
			// Paced on average (a sleep per publish would lose the timer's slack on
			// every one), never catching up more than a short burst after the window
			// held it back.
			if now := time.Now(); next.Before(now.Add(-maxCatchUp)) {
				next = now
			} else if next.After(now) {
				if err := sleepCtx(ctx, next.Sub(now)); err != nil {
					return 0, r.track.stalled(err)
				}
			}
			next = next.Add(r.gap)
		}
		state := desiredState(i, seq)
		var payload []byte
		if seed {
			payload = fmt.Appendf(nil, `{"state":{"desired":%s,"reported":%s}}`, state, state)
		} else {
			payload = fmt.Appendf(nil, `{"state":{"desired":%s}}`, state)
		}
		tokens = append(tokens, r.apps[i%len(r.apps)].Publish("$aws/things/"+name+"/shadow/update", 1, false, payload))
	}
	select {
	case <-finished:
	case <-ctx.Done():
		return 0, r.track.stalled(ctx.Err())
	}
	took := r.track.lastReport().Sub(began)
	for _, tok := range tokens {
		if err := await(ctx, tok, r.opts.RoundTimeout); err != nil {
			return 0, fmt.Errorf("publish desired state: %w", err)
		}
	}
	return took, nil
}

// sleepCtx waits d, or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// latencies returns the latencies kept since the last call.
func (r *rig) latencies() []time.Duration { return r.track.take() }

// desiredState is thing i's desired state in round seq: seq changes every round, the
// other fields now and then, so the delta is one to three keys.
func desiredState(i int, seq int64) []byte {
	return fmt.Appendf(nil, `{"seq":%d,"setpoint":%d,"mode":%q}`, seq, 18+(int64(i)+seq)%8, modes[(int64(i)+seq)%3])
}

// tracker follows one round at a time from the watcher's update/accepted messages.
// Its methods are safe for concurrent use.
type tracker struct {
	index  map[string]int // thing name → index; fixed
	window chan struct{}  // a slot per thing changed and not yet reported

	mu        sync.Mutex
	seq       int64 // the round in progress
	measure   bool
	desiredAt []time.Time // per thing: when its desired change of this round was accepted
	done      []bool      // per thing: its report of this round was accepted
	remaining int
	last      time.Time     // when the last report of the round was accepted
	finished  chan struct{} // closed when remaining reaches 0
	lat       []time.Duration
}

// begin starts round seq and returns a channel closed once every thing reported it.
func (t *tracker) begin(seq int64, measure bool) <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.seq, t.measure = seq, measure
	clear(t.desiredAt)
	clear(t.done)
	t.remaining = len(t.done)
	t.finished = make(chan struct{})
	// Slots of a round that failed are not given back; start with all free.
	for len(t.window) > 0 {
		<-t.window
	}
	return t.finished
}

// seqOnly is the part of a state section the watcher reads.
type seqOnly struct {
	Seq *int64 `json:"seq"`
}

// onAccepted is the watcher's handler. paho calls it on one goroutine, in order.
func (t *tracker) onAccepted(_ mqttc.Client, m mqttc.Message) {
	now := time.Now()
	name, ok := strings.CutPrefix(m.Topic(), "$aws/things/")
	if !ok {
		return
	}
	name, _, _ = strings.Cut(name, "/")
	var msg struct {
		State struct {
			Desired  *seqOnly `json:"desired"`
			Reported *seqOnly `json:"reported"`
		} `json:"state"`
	}
	if json.Unmarshal(m.Payload(), &msg) != nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	i, ok := t.index[name]
	if !ok {
		return
	}
	if d := msg.State.Desired; d != nil && d.Seq != nil && *d.Seq == t.seq && t.desiredAt[i].IsZero() {
		t.desiredAt[i] = now
	}
	if r := msg.State.Reported; r != nil && r.Seq != nil && *r.Seq == t.seq && !t.done[i] {
		t.done[i] = true
		if t.measure && !t.desiredAt[i].IsZero() {
			t.lat = append(t.lat, now.Sub(t.desiredAt[i]))
		}
		select {
		case <-t.window:
		default:
		}
		t.last = now
		if t.remaining--; t.remaining == 0 {
			close(t.finished)
		}
	}
}

func (t *tracker) lastReport() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.last
}

func (t *tracker) take() []time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := t.lat
	t.lat = make([]time.Duration, 0, cap(out))
	return out
}

// stalled describes a round that did not converge.
func (t *tracker) stalled(err error) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	var first string
	for i, d := range t.done {
		if !d {
			for name, j := range t.index {
				if j == i {
					first = name
				}
			}
			break
		}
	}
	return fmt.Errorf("%w: %d of %d things have not reported round %d (first: %s)", err, t.remaining, len(t.done), t.seq, first)
}

// connect opens a paho connection to a plain MQTT endpoint. handler, if set,
// receives messages that match no subscription.
func connect(ctx context.Context, endpoint, clientID string, handler mqttc.MessageHandler) (mqttc.Client, error) {
	broker := "tcp://" + strings.TrimPrefix(strings.TrimPrefix(endpoint, "mqtt://"), "tcp://")
	o := mqttc.NewClientOptions().
		AddBroker(broker).
		SetClientID(clientID).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetOrderMatters(true).
		SetKeepAlive(60 * time.Second).
		SetConnectTimeout(10 * time.Second).
		SetDefaultPublishHandler(handler)
	c := mqttc.NewClient(o)
	if err := await(ctx, c.Connect(), 15*time.Second); err != nil {
		return nil, fmt.Errorf("benchfleet: connect %s as %s: %w", endpoint, clientID, err)
	}
	return c, nil
}

// await waits for a paho token, at most d and never past ctx.
func await(ctx context.Context, tok mqttc.Token, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return errors.New("no answer in time")
	}
}
