package shadowclient_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shadowsync/shadowsync/internal/testserver"
	"github.com/shadowsync/shadowsync/localiot"
	"github.com/shadowsync/shadowsync/shadowclient"
	"github.com/shadowsync/shadowsync/shadowstate"
)

// byPrefix routes things "a-…" to member 0 and the others to member 1.
func byPrefix(thing string, _ int) int {
	if strings.HasPrefix(thing, "a-") {
		return 0
	}
	return 1
}

func TestNewPoolRefusesBadOptions(t *testing.T) {
	for _, group := range []string{"", "a/b", "a+", "#"} {
		if _, err := shadowclient.NewPool(group, byPrefix); err == nil {
			t.Errorf("NewPool(%q) accepted", group)
		}
	}
	if _, err := shadowclient.NewPool("g", nil); err == nil {
		t.Error("NewPool with a nil route accepted")
	}
}

// Two pooled clients on the wildcard filters share them: the broker hands each
// message to one connection. Member b holds the same filters as member a (it reads
// and watches a shadow of its own), so about half of a's replies and documents
// messages arrive on b's connection: b hands them to a, whose requests (Get,
// UpdateByDocuments) and documents callbacks all complete. Without the forwarding, the
// messages b received for a's things would be dropped and a's requests would time
// out.
func TestPoolMemberHandlesMessagesArrivingOnAnother(t *testing.T) {
	srv := testserver.Start(t, localiot.Options{})
	endpoint := srv.Endpoints().Plain
	pool, err := shadowclient.NewPool("pool-test", byPrefix)
	if err != nil {
		t.Fatal(err)
	}
	opts := shadowclient.Options{Wildcards: shadowclient.WildcardsAlways, Pool: pool}
	connA, connB := dial(t, endpoint, nil), dial(t, endpoint, nil)
	a, b := newClient(t, connA, opts), newClient(t, connB, opts)
	pool.Set(a, b)
	if !pool.Shared() {
		t.Fatal("a pool of two does not share")
	}
	app := newClient(t, dial(t, endpoint, nil), shadowclient.Options{})

	// b subscribes to the same wildcard filters as a will: documents, get and
	// update replies.
	own := mustShadow(t, b, "b-0", "")
	if mustShadow(t, a, "b-0", "") != own {
		t.Error("a's handle of b's thing is not b's: its requests would go out on a and their replies reach b")
	}
	if _, err := own.OnDocuments(t.Context(), func(context.Context, *shadowstate.DocumentsMessage) {}); err != nil {
		t.Fatal(err)
	}
	if _, err := own.UpdateReported(t.Context(), map[string]any{"n": 0}); err != nil {
		t.Fatal(err)
	}
	if _, err := own.Get(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, f := range b.HeldFilters() {
		if !strings.Contains(f, "+") {
			t.Errorf("b holds the named filter %s", f)
		}
	}

	const n = 20
	type docs struct {
		thing string
		v     int64
	}
	seen := make(chan docs, 4*n)
	var mu sync.Mutex
	wrong := 0 // documents of a thing delivered to another's handle
	for i := range n {
		thing := fmt.Sprintf("a-%02d", i)
		if _, err := mustShadow(t, a, thing, "").OnDocuments(t.Context(), func(_ context.Context, d *shadowstate.DocumentsMessage) {
			if fmt.Sprint(d.Current.State.Desired["thing"]) != thing {
				mu.Lock()
				wrong++
				mu.Unlock()
			}
			seen <- docs{thing, d.Current.Version}
		}); err != nil {
			t.Fatal(err)
		}
	}
	before := connB.Received()
	for i := range n {
		thing := fmt.Sprintf("a-%02d", i)
		acc, err := mustShadow(t, app, thing, "").UpdateDesired(t.Context(), map[string]any{"thing": thing})
		if err != nil {
			t.Fatal(err)
		}
		got := recv(t, seen, "the documents message of "+thing)
		if got.thing != thing || got.v != acc.Version {
			t.Fatalf("documents of %s version %d, want %s version %d", got.thing, got.v, thing, acc.Version)
		}
		h := mustShadow(t, a, thing, "")
		doc, err := h.Get(t.Context())
		if err != nil {
			t.Fatalf("Get %s on its owner: %v", thing, err)
		}
		upd, err := h.UpdateByDocuments(t.Context(), shadowstate.StateUpdate{Reported: []byte(`{"ok":true}`)}, doc.Version, nil)
		if err != nil || upd.Version != doc.Version+1 {
			t.Fatalf("UpdateByDocuments %s on its owner = %+v, %v", thing, upd, err)
		}
		if got := recv(t, seen, "the documents message of the report of "+thing); got.v != upd.Version {
			t.Fatalf("documents of %s version %d, want %d", got.thing, got.v, upd.Version)
		}
	}
	if arrived := connB.Received() - before; arrived == 0 {
		t.Error("no message of a's things arrived on b's connection: the broker did not share them")
	}

	// Once a is closed, the messages of its things that b receives go nowhere, as a's
	// own filters are gone: b's own thing's documents message, which comes after on
	// the same filter, finds none of a's callbacks run.
	ownDocs := make(chan int64, 1)
	if _, err := own.OnDocuments(t.Context(), func(_ context.Context, d *shadowstate.DocumentsMessage) {
		select {
		case ownDocs <- d.Current.Version:
		default:
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := mustShadow(t, app, "a-00", "").UpdateDesired(t.Context(), map[string]any{"after": "close"}); err != nil {
		t.Fatal(err)
	}
	last, err := own.UpdateReported(t.Context(), map[string]any{"n": 1})
	if err != nil {
		t.Fatal(err)
	}
	for v := recv(t, ownDocs, "b's own documents message"); v != last.Version; v = recv(t, ownDocs, "b's own documents message") {
	}
	select {
	case d := <-seen:
		t.Errorf("the documents message of %s version %d reached closed a", d.thing, d.v)
	default:
	}

	mu.Lock()
	defer mu.Unlock()
	if wrong > 0 {
		t.Errorf("%d documents messages reached the handle of another thing", wrong)
	}
}

// HasShadows says whether a client holds a handle of one of a thing's shadows, the
// classic or a named one, until Forget drops the last.
func TestHasShadows(t *testing.T) {
	srv := testserver.Start(t, localiot.Options{})
	c := newClient(t, dial(t, srv.Endpoints().Plain, nil), shadowclient.Options{})
	if c.HasShadows("lamp") {
		t.Fatal("a new client holds a handle of lamp")
	}
	mustShadow(t, c, "lamp", "")
	mustShadow(t, c, "lamp", "cfg")
	mustShadow(t, c, "lamp", "cfg") // the same handle again
	c.Forget("lamp", "")
	if !c.HasShadows("lamp") {
		t.Error("the named shadow's handle is not counted")
	}
	c.Forget("lamp", "cfg")
	if c.HasShadows("lamp") {
		t.Error("lamp still counted once both handles are forgotten")
	}
	if c.HasShadows("lamp-2") {
		t.Error("a thing never touched counted")
	}
}

// A pool that grows from one member: the first client subscribed its wildcard
// filters unshared while it was alone. Once the pool has two members it moves them
// into the group, so that each message reaches the pool once; before, the first
// member kept its own copy of every message on top of the group's, and each
// documents message reached its callback twice.
func TestPoolGrownFromOneMemberDeliversOnce(t *testing.T) {
	srv := testserver.Start(t, localiot.Options{})
	endpoint := srv.Endpoints().Plain
	pool, err := shadowclient.NewPool("grown", byPrefix)
	if err != nil {
		t.Fatal(err)
	}
	opts := shadowclient.Options{Wildcards: shadowclient.WildcardsAlways, Pool: pool}
	connA := dial(t, endpoint, nil)
	a := newClient(t, connA, opts)
	pool.Set(a)
	versions := make(chan int64, 64)
	if _, err := mustShadow(t, a, "a-0", "").OnDocuments(t.Context(), func(_ context.Context, d *shadowstate.DocumentsMessage) {
		versions <- d.Current.Version
	}); err != nil {
		t.Fatal(err)
	}
	app := mustShadow(t, newClient(t, dial(t, endpoint, nil), shadowclient.Options{}), "a-0", "")
	change := func(n int) int64 {
		t.Helper()
		acc, err := app.UpdateDesired(t.Context(), map[string]any{"n": n})
		if err != nil {
			t.Fatal(err)
		}
		return acc.Version
	}
	// Alone, a receives each message once, unshared.
	before := connA.Received()
	v := change(0)
	if got := recv(t, versions, "a's documents message, alone"); got != v {
		t.Fatalf("documents version %d, want %d", got, v)
	}

	connB := dial(t, endpoint, nil)
	b := newClient(t, connB, opts)
	pool.Set(a, b)
	// b holds the same wildcard filter, shared, for a thing of its own.
	if _, err := mustShadow(t, b, "b-0", "").OnDocuments(t.Context(), func(context.Context, *shadowstate.DocumentsMessage) {}); err != nil {
		t.Fatal(err)
	}
	received := func() uint64 { return connA.Received() + connB.Received() }
	if n := connA.Received() - before; n != 1 {
		t.Fatalf("alone, a received %d messages for one change, want 1", n)
	}
	// quiet waits until no message has arrived for 50 ms: the second copy of a
	// message, if any, is in.
	quiet := func() {
		t.Helper()
		last, since := received(), time.Now()
		eventually(t, wait, func() error {
			if n := received(); n != last {
				last, since = n, time.Now()
			}
			if time.Since(since) < 50*time.Millisecond {
				return errors.New("messages still arriving")
			}
			return nil
		})
	}
	// The move is in the background: once a change brings the pool one message,
	// every later one does, and a's callback gets each version once.
	moved := false
	for i := 1; i <= 50 && !moved; i++ {
		at := received()
		v := change(i)
		for got := recv(t, versions, "a's documents message"); got != v; got = recv(t, versions, "a's documents message") {
		}
		quiet()
		moved = received()-at == 1
		for len(versions) > 0 {
			<-versions // second copies, from before the move
		}
	}
	if !moved {
		t.Fatal("every change still reaches the pool twice: a's filter did not move into the group")
	}
	for i := 100; i < 110; i++ {
		at := received()
		v := change(i)
		if got := recv(t, versions, "a's documents message"); got != v {
			t.Fatalf("documents version %d, want %d", got, v)
		}
		if n := received() - at; n != 1 {
			t.Errorf("change %d reached the pool %d times, want once", i, n)
		}
	}
	at := received()
	consistently(t, 200*time.Millisecond, func() error {
		if n := received() - at; n != 0 {
			return fmt.Errorf("%d more messages after the last change's", n)
		}
		if len(versions) > 0 {
			return fmt.Errorf("documents version %d reached a's callback again", <-versions)
		}
		return nil
	})
}

// consistently fails the test if check fails at any time during d.
func consistently(t *testing.T, d time.Duration, check func() error) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if err := check(); err != nil {
			t.Fatal(err)
		}
	}
}
