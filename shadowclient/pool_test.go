package shadowclient_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

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
