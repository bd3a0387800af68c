package reconciler_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shadowsync/shadowsync/internal/faultproxy"
	"github.com/shadowsync/shadowsync/internal/testserver"
	"github.com/shadowsync/shadowsync/localiot"
	"github.com/shadowsync/shadowsync/queue"
	"github.com/shadowsync/shadowsync/reconciler"
	"github.com/shadowsync/shadowsync/shadowclient"
	"github.com/shadowsync/shadowsync/shadowstate"
	"github.com/shadowsync/shadowsync/transport"
)

// TestModelConvergence is the typed contract as a property: random sequences of what
// apps and devices do — partial desired updates, null deletes, desiring what the
// device already reports, values the schema refuses, the device reporting changes of
// its own, lost connections — run against localiot for every device type of
// deviceTypes, on the classic shadow (with a status field) and on a named shadow.
// The named shadow's lanes run on a connection pool of two.
// A model of the shadow service and of a perfect device says what must hold once
// everything is delivered: a valid desired state leaves no delta; every field holds
// its desired value, or one it could have been driven to or reported, or its initial
// value if nobody desired it; the hardware is what the shadow reports; keys of
// reported state the device does not know survive; and the status names the last
// desired change with the right outcome. A failing sequence is shrunk and printed.
//
// The default run tries a few sequences per type and shadow; SHADOWSYNC_SOAK=1 tries
// 1,000 per type and shadow. SHADOWSYNC_MODEL_SEED=n repeats a run's sequences.
func TestModelConvergence(t *testing.T) {
	perRun, workers := 10, 8
	if os.Getenv("SHADOWSYNC_SOAK") != "" {
		perRun, workers = 1000, 12
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("SHADOWSYNC_MODEL_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("SHADOWSYNC_MODEL_SEED: %v", err)
		}
		seed = v
	}
	t.Logf("seed %d (SHADOWSYNC_MODEL_SEED=%d repeats these sequences)", seed, seed)
	srv := testserver.Start(t, localiot.Options{})
	for ti, dt := range deviceTypes {
		for _, shadowName := range []string{"", "cfg"} {
			label := dt.name + "/classic"
			if shadowName != "" {
				label = dt.name + "/named"
			}
			t.Run(label, func(t *testing.T) {
				t.Parallel()
				r := rand.New(rand.NewPCG(seed, uint64(ti*2+len(shadowName))))
				seqs := make([][]op, perRun)
				for i := range seqs {
					seqs[i] = genSequence(r, dt)
				}
				runSequences(t, srv.Endpoints().Plain, dt, shadowName, seqs, workers)
			})
		}
	}
}

// op is one step of a sequence.
type op struct {
	kind  string   // desire, delete, clear, desire-reported, report, disconnect, settle
	patch string   // desire: the desired patch (JSON)
	path  []string // delete, desire-reported, report
	value any      // report
}

func (o op) String() string {
	p := strings.Join(o.path, ".")
	switch o.kind {
	case "desire":
		return "desire " + o.patch
	case "report":
		return fmt.Sprintf("device reports %s=%s", p, jsonText(o.value))
	case "delete", "desire-reported":
		return o.kind + " " + p
	}
	return o.kind
}

// expand returns every concrete path of dt's leaves.
func expand(dt deviceType) [][]string {
	var out [][]string
	for _, l := range dt.leaves {
		i := slices.Index(l.path, "*")
		if i < 0 {
			out = append(out, l.path)
			continue
		}
		for _, k := range dt.keys {
			p := slices.Clone(l.path)
			p[i] = k
			out = append(out, p)
		}
	}
	return out
}

// specOf returns the leaf spec a concrete path belongs to.
func specOf(dt deviceType, path []string) (leafSpec, bool) {
	for _, l := range dt.leaves {
		if len(l.path) != len(path) {
			continue
		}
		ok := true
		for i := range path {
			if l.path[i] != "*" && l.path[i] != path[i] {
				ok = false
				break
			}
		}
		if ok {
			return l, true
		}
	}
	return leafSpec{}, false
}

func pick[E any](r *rand.Rand, s []E) E { return s[r.IntN(len(s))] }

func genSequence(r *rand.Rand, dt deviceType) []op {
	paths := expand(dt)
	var ops []op
	for range 3 + r.IntN(8) {
		switch x := r.IntN(100); {
		case x < 45:
			patch := shadowstate.Object{}
			for range 1 + r.IntN(3) {
				p := pick(r, paths)
				l, _ := specOf(dt, p)
				v := pick(r, l.valid)
				if len(l.invalid) > 0 && r.IntN(7) == 0 {
					v = pick(r, l.invalid)
				}
				patch = withPath(patch, p, v)
			}
			ops = append(ops, op{kind: "desire", patch: jsonText(patch)})
		case x < 57:
			p := pick(r, paths)
			ops = append(ops, op{kind: "delete", path: p[:1+r.IntN(len(p))]})
		case x < 67:
			ops = append(ops, op{kind: "desire-reported", path: pick(r, paths)})
		case x < 82:
			p := pick(r, paths)
			l, _ := specOf(dt, p)
			ops = append(ops, op{kind: "report", path: p, value: pick(r, l.valid)})
		case x < 87:
			ops = append(ops, op{kind: "disconnect"})
		case x < 90:
			ops = append(ops, op{kind: "clear"})
		default:
			ops = append(ops, op{kind: "settle"})
		}
	}
	return ops
}

// lane is one device process: a manager behind a fault proxy, its controller and an
// app client, for a fixed list of things.
type lane struct {
	dev    modelDevice
	mgr    *reconciler.Manager
	proxy  *faultproxy.Proxy
	app    *shadowclient.Client
	shadow string
	status bool
	things chan string
	stop   func() // stops the manager and the proxy
	// logs holds the manager's debug log, for the lines about a failing thing.
	logs *lockedBuffer
	// cutMu serialises disconnects: one cut and restore at a time.
	cutMu sync.Mutex
}

func newLane(t *testing.T, endpoint string, dt deviceType, shadowName string, things []string) *lane {
	t.Helper()
	proxy, err := faultproxy.Start(strings.TrimPrefix(endpoint, "mqtt://"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := fastConfig("mqtt://" + proxy.Addr())
	cfg.KeepAlive = 2 * time.Second
	cfg.StableAfter = 100 * time.Millisecond // each cut is its own: reconnect at the base backoff
	logs := &lockedBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	mopts := reconciler.Options{Logger: logger, Client: shadowclient.Options{Wildcards: shadowclient.WildcardsAlways}}
	if shadowName != "" {
		// The named shadows' lanes run on a pool of two connections sharing their
		// wildcard subscriptions: a thing's messages come on either connection, its
		// requests and reports go on its own, and a cut breaks both at once.
		mopts.Pool = reconciler.Pool{Size: 2}
	}
	m, err := reconciler.NewManager(cfg, mopts)
	if err != nil {
		t.Fatal(err)
	}
	l := &lane{mgr: m, proxy: proxy, logs: logs, shadow: shadowName, status: shadowName == "", things: make(chan string, len(things))}
	// Retries back off quickly: the test is about where a shadow ends up, not how
	// patiently it gets there.
	limiter, err := queue.NewRateLimiter[shadowstate.ID](queue.RateLimitOptions{BaseDelay: 10 * time.Millisecond, MaxDelay: 500 * time.Millisecond, QPS: 1000, Burst: 1000})
	if err != nil {
		t.Fatal(err)
	}
	opts := reconciler.ControllerOptions{Name: dt.name, Things: things, Shadow: shadowName, MaxConcurrentReconciles: 16, RateLimiter: limiter}
	if l.status {
		opts.StatusField = "status"
	}
	if l.dev, err = dt.register(m, opts); err != nil {
		t.Fatal(err)
	}
	for _, th := range things {
		l.things <- th
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Start(ctx) }()
	var once sync.Once
	l.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Start: %v", err)
				}
			case <-time.After(wait):
				t.Error("Start did not return after its ctx ended")
			}
			_ = proxy.Close()
		})
	}
	t.Cleanup(l.stop)
	if err := m.Conn().AwaitConnection(t.Context()); err != nil {
		t.Fatal(err)
	}
	conn, err := transport.Dial(t.Context(), fastConfig(endpoint))
	if err != nil {
		t.Fatal(err)
	}
	// The app drives the test and is not what it checks: it waits longer for a reply
	// than a device would, so that a loaded machine does not fail a sequence.
	if l.app, err = shadowclient.New(conn, shadowclient.Options{Wildcards: shadowclient.WildcardsAlways, Timeout: 20 * time.Second}); err != nil {
		t.Fatal(err)
	}
	stopManager := l.stop
	l.stop = func() {
		stopManager()
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		_ = l.app.Close(ctx)
		_ = conn.Close(ctx)
	}
	t.Cleanup(l.stop)
	return l
}

var laneNo struct {
	sync.Mutex
	n int
}

func laneThings(prefix string, n int) []string {
	laneNo.Lock()
	laneNo.n++
	no := laneNo.n
	laneNo.Unlock()
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d-%d", prefix, no, i)
	}
	return out
}

// laneSize is how many sequences one lane (one device process) plays: a lost
// connection makes it read all its shadows again, and a fleet of a thousand read
// after every cut measures the re-read, not the contract.
const laneSize = 25

func runSequences(t *testing.T, endpoint string, dt deviceType, shadowName string, seqs [][]op, workers int) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	type failure struct {
		seq []op
		err error
	}
	var failed *failure
	for start := 0; start < len(seqs) && failed == nil; start += laneSize {
		chunk := seqs[start:min(start+laneSize, len(seqs))]
		l := newLane(t, endpoint, dt, shadowName, laneThings("m-"+dt.name, len(chunk)))
		var mu sync.Mutex
		work := make(chan []op)
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for seq := range work {
					err := l.run(ctx, dt, <-l.things, seq, 20*time.Second)
					if err != nil && ctx.Err() == nil {
						mu.Lock()
						if failed == nil {
							failed = &failure{seq, err}
						}
						mu.Unlock()
						cancel()
					}
				}
			})
		}
	feed:
		for _, s := range chunk {
			select {
			case work <- s:
			case <-ctx.Done():
				break feed
			}
		}
		close(work)
		wg.Wait()
		l.stop()
	}
	if failed == nil {
		return
	}
	shrunk, err := shrink(t, endpoint, dt, shadowName, failed.seq, failed.err)
	t.Errorf("%s: a sequence of %d steps did not converge: %v\nsequence:\n  %s\nshrunk to %d steps, which fails with: %v\n  %s",
		dt.name, len(failed.seq), failed.err, joinOps(failed.seq), len(shrunk), err, joinOps(shrunk))
}

func joinOps(ops []op) string {
	s := make([]string, len(ops))
	for i, o := range ops {
		s[i] = fmt.Sprintf("%d. %s", i+1, o)
	}
	return strings.Join(s, "\n  ")
}

// shrink removes steps from a failing sequence while it still fails, on fresh things
// of a lane of its own, within a bounded number of runs.
func shrink(t *testing.T, endpoint string, dt deviceType, shadowName string, seq []op, err error) ([]op, error) {
	const maxRuns = 24
	l := newLane(t, endpoint, dt, shadowName, laneThings("s-"+dt.name, maxRuns))
	runs := 0
	for changed := true; changed && runs < maxRuns; {
		changed = false
		for i := 0; i < len(seq) && runs < maxRuns; i++ {
			cand := slices.Delete(slices.Clone(seq), i, i+1)
			runs++
			if e := l.run(t.Context(), dt, <-l.things, cand, 8*time.Second); e != nil {
				seq, err, changed = cand, e, true
				i--
			}
		}
	}
	return seq, err
}

// model is what the test knows of one shadow: its desired state by its own merge,
// and for every path the values the device may hold there.
type model struct {
	dt       deviceType
	desired  shadowstate.Object
	initial  shadowstate.Object
	possible map[string][]any
	// changed is the version of the last update that changed desired state.
	changed int64
}

func key(p []string) string { return strings.Join(p, ".") }

func (m *model) allow(p []string, v any) {
	k := key(p)
	for _, x := range m.possible[k] {
		if shadowstate.Equal(x, v) {
			return
		}
	}
	m.possible[k] = append(m.possible[k], v)
}

// valid reports whether desired state passes the type's schema: no leaf holds a value
// the spec lists as refused.
func (m *model) valid() bool {
	ok := true
	walkLeaves(m.desired, nil, func(p []string, v any) {
		if l, found := specOf(m.dt, p); found {
			for _, bad := range l.invalid {
				if shadowstate.Equal(bad, v) {
					ok = false
				}
			}
		}
	})
	return ok
}

// setDesired records an accepted desired update.
func (m *model) setDesired(d shadowstate.Object, version int64) {
	if !shadowstate.Equal(d, m.desired) || (d == nil) != (m.desired == nil) {
		m.changed = version
	}
	m.desired = d
	if m.valid() {
		walkLeaves(d, nil, func(p []string, v any) { m.allow(p, v) })
	}
}

func walkLeaves(o shadowstate.Object, prefix []string, fn func([]string, any)) {
	for k, v := range o {
		p := append(slices.Clone(prefix), k)
		if sub, ok := v.(shadowstate.Object); ok {
			walkLeaves(sub, p, fn)
			continue
		}
		fn(p, v)
	}
}

func lookup(o shadowstate.Object, p []string) (any, bool) {
	var v any = o
	for _, k := range p {
		obj, ok := v.(shadowstate.Object)
		if !ok {
			return nil, false
		}
		if v, ok = obj[k]; !ok {
			return nil, false
		}
	}
	return v, true
}

// mergeModel is the shadow service's merge of a desired update, written out again
// for the model: null deletes, objects merge key by key, anything else replaces, and
// emptied objects go.
func mergeModel(dst, patch shadowstate.Object) shadowstate.Object {
	out := shadowstate.Object{}
	for k, v := range dst {
		out[k] = v
	}
	for k, v := range patch {
		switch v := v.(type) {
		case nil:
			delete(out, k)
		case shadowstate.Object:
			sub, _ := out[k].(shadowstate.Object)
			if m := mergeModel(sub, v); m != nil {
				out[k] = m
			} else {
				delete(out, k)
			}
		default:
			out[k] = v
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func isZero(v any) bool {
	switch v := v.(type) {
	case bool:
		return !v
	case string:
		return v == ""
	case json.Number:
		f, err := v.Float64()
		return err == nil && f == 0
	case []any:
		return len(v) == 0
	}
	return false
}

// run plays one sequence on thing and checks the model once everything is delivered.
func (l *lane) run(ctx context.Context, dt deviceType, thing string, seq []op, converge time.Duration) (err error) {
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w\n  the device's log of it:\n%s", err, l.logOf(thing))
		}
	}()
	h, err := l.app.Shadow(thing, l.shadow)
	if err != nil {
		return err
	}
	m := &model{dt: dt, possible: map[string][]any{}}
	if err := shadowstate.Unmarshal([]byte(dt.initial), &m.initial); err != nil {
		return err
	}
	walkLeaves(m.initial, nil, func(p []string, v any) { m.allow(p, v) })
	// The device says what it is on start; another component has a key of its own.
	if err := l.retry(ctx, func(ctx context.Context) error { return l.dev.start(ctx, thing, m.initial) }); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	other := shadowstate.Object{"x-other": shadowstate.Object{"k": "v"}}
	if _, err := h.UpdateReported(ctx, other); err != nil {
		return fmt.Errorf("other component's report: %w", err)
	}
	for i, o := range seq {
		if err := l.step(ctx, h, thing, m, o); err != nil {
			return fmt.Errorf("step %d (%s): %w", i+1, o, err)
		}
	}
	if err := l.check(ctx, h, thing, m, converge); err != nil {
		return fmt.Errorf("%s: %w", thing, err)
	}
	return nil
}

// logOf returns the lines of the manager's log that name thing, or (with the
// connection's lines) that name no thing, the last 200 of them.
func (l *lane) logOf(thing string) string {
	var out []string
	for line := range strings.Lines(l.logs.String()) {
		if strings.Contains(line, "="+thing+" ") || strings.Contains(line, thing+"/") || strings.Contains(line, thing+":") ||
			(!strings.Contains(line, "thing=") && !strings.Contains(line, "shadow=")) {
			out = append(out, "    "+strings.TrimRight(line, "\n"))
		}
	}
	if len(out) > 200 {
		out = out[len(out)-200:]
	}
	return strings.Join(out, "\n")
}

func (l *lane) retry(ctx context.Context, f func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for {
		err := f(ctx)
		if err == nil || ctx.Err() != nil {
			return err
		}
		if err := l.mgr.Conn().AwaitConnection(ctx); err != nil {
			return err
		}
	}
}

func (l *lane) step(ctx context.Context, h *shadowclient.Handle, thing string, m *model, o op) error {
	desire := func(raw string) error {
		acc, err := h.Update(ctx, shadowstate.StateUpdate{Desired: json.RawMessage(raw)})
		if err != nil {
			return err
		}
		var patch shadowstate.Object
		if raw != "null" {
			if err := shadowstate.Unmarshal([]byte(raw), &patch); err != nil {
				return err
			}
		}
		next := mergeModel(m.desired, patch)
		if raw == "null" {
			next = nil
		}
		m.setDesired(next, acc.Version)
		return nil
	}
	switch o.kind {
	case "desire":
		return desire(o.patch)
	case "delete":
		if _, ok := lookup(m.desired, o.path); !ok {
			return nil // nothing to delete
		}
		return desire(jsonText(withPath(nil, o.path, json.RawMessage("null"))))
	case "clear":
		return desire("null")
	case "desire-reported":
		doc, err := h.Get(ctx)
		if err != nil {
			return err
		}
		v, ok := lookup(doc.State.Reported, o.path)
		if !ok {
			return nil
		}
		return desire(jsonText(withPath(nil, o.path, v)))
	case "report":
		m.allow(o.path, o.value)
		return l.retry(ctx, func(ctx context.Context) error { return l.dev.report(ctx, thing, o.path, o.value) })
	case "disconnect":
		l.cutMu.Lock()
		defer l.cutMu.Unlock()
		l.proxy.Cut()
		defer l.proxy.Restore()
		wait, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		for l.mgr.Conn().IsOnline() && wait.Err() == nil {
			select {
			case <-wait.Done():
			case <-time.After(5 * time.Millisecond):
			}
		}
		return nil
	case "settle":
		if !m.valid() {
			return nil // the delta stays: nothing to wait for
		}
		wait, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		for wait.Err() == nil {
			if doc, err := h.Get(wait); err == nil && doc.State.Delta == nil {
				return nil
			}
			select {
			case <-wait.Done():
			case <-time.After(20 * time.Millisecond):
			}
		}
		return nil
	}
	return fmt.Errorf("unknown step %q", o.kind)
}

// check waits until the shadow and the device satisfy the model, and returns the
// last violation if they do not within converge.
func (l *lane) check(ctx context.Context, h *shadowclient.Handle, thing string, m *model, converge time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, converge)
	defer cancel()
	var last error
	for {
		doc, err := h.Get(ctx)
		if err == nil {
			last = l.violation(doc, thing, m)
			if last == nil {
				return nil
			}
		} else if ctx.Err() == nil {
			last = err
		}
		select {
		case <-ctx.Done():
			if last == nil {
				last = ctx.Err()
			}
			if doc != nil {
				last = fmt.Errorf("%w\n  shadow: desired %s, reported %s (version %d); hardware %s", last,
					jsonText(doc.State.Desired), jsonText(doc.State.Reported), doc.Version, jsonText(l.dev.hardware(thing)))
			}
			return last
		case <-time.After(40 * time.Millisecond):
		}
	}
}

func (l *lane) violation(doc *shadowstate.Document, thing string, m *model) error {
	desired, reported := doc.State.Desired, doc.State.Reported
	if !shadowstate.Equal(desired, m.desired) && (desired != nil || m.desired != nil) {
		return fmt.Errorf("model out of step: desired %s, model %s", jsonText(desired), jsonText(m.desired))
	}
	valid := m.valid()
	if valid && shadowstate.Delta(desired, reported) != nil {
		return fmt.Errorf("valid desired state left a delta %s", jsonText(shadowstate.Delta(desired, reported)))
	}
	for _, p := range expand(m.dt) {
		r, present := lookup(reported, p)
		if d, ok := lookup(desired, p); ok && valid {
			if !shadowstate.Equal(r, d) {
				return fmt.Errorf("%s: reported %s, desired %s", key(p), jsonText(r), jsonText(d))
			}
			continue
		}
		_, initially := lookup(m.initial, p)
		if !initially && (!present || isZero(r)) {
			continue // never there: absent, or a zero value beside a desired sibling
		}
		allowed := slices.ContainsFunc(m.possible[key(p)], func(x any) bool { return shadowstate.Equal(x, r) })
		if !present || !allowed {
			return fmt.Errorf("%s: reported %s (present %v), but only %s could be there", key(p), jsonText(r), present, jsonText(m.possible[key(p)]))
		}
	}
	if got := reported["x-other"]; !shadowstate.Equal(got, shadowstate.Object{"k": "v"}) {
		return fmt.Errorf("another component's reported key changed to %s", jsonText(got))
	}
	if hw, rep := l.dev.hardware(thing), l.dev.normal(reported); !shadowstate.Equal(hw, rep) {
		return fmt.Errorf("hardware %s, but the shadow reports %s", jsonText(hw), jsonText(rep))
	}
	if l.status && desired != nil {
		st, _ := reported["status"].(shadowstate.Object)
		num, _ := st["observedVersion"].(json.Number)
		v, _ := num.Int64()
		switch {
		case v < m.changed:
			return fmt.Errorf("status %s, want observedVersion >= %d", jsonText(st), m.changed)
		case st["ok"] != valid:
			return fmt.Errorf("status %s, want ok=%v", jsonText(st), valid)
		case !valid && st["error"] == nil:
			return errors.New("status of invalid desired state has no error")
		}
	}
	return nil
}
