package shadowclient

import (
	"errors"
	"log/slog"
	"testing"

	"github.com/shadowsync/shadowsync/shadowstate"
)

// A documents message without a clientToken settles the UpdateByDocuments request
// fenced at the version it moved the shadow from: accepted when its state is what the
// request makes, 409 when it is another writer's; requests at other versions wait.
func TestConfirmDocumentsWithoutToken(t *testing.T) {
	c := &Client{log: slog.New(slog.DiscardHandler), shadows: map[shadowstate.ID]*Handle{}, pending: map[string]*pendingRequest{}}
	id := shadowstate.ID{Thing: "T"}
	h := &Handle{c: c, id: id}
	c.shadows[id] = h
	ours := func(d *shadowstate.DocumentsMessage) bool { return d.Current.State.Reported["n"] == "ours" }
	add := func(token string, version int64) *pendingRequest {
		p := &pendingRequest{id: id, op: shadowstate.OpUpdate, docs: &docsConfirm{version: version, matches: ours}, done: make(chan reply, 1)}
		if err := h.register(token, p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	docs := func(version int64, n string) *shadowstate.DocumentsMessage {
		return &shadowstate.DocumentsMessage{Current: shadowstate.Snapshot{Version: version, State: shadowstate.DocumentState{Reported: shadowstate.Object{"n": n}}}}
	}
	accepted, conflicted, later := add("a", 4), add("b", 7), add("c", 9)

	c.confirmDocuments(id, docs(5, "ours"))
	if r := <-accepted.done; r.docs == nil || r.docs.Current.Version != 5 {
		t.Errorf("request at 4: %+v; want accepted by version 5", r)
	}
	c.confirmDocuments(id, docs(8, "theirs"))
	var rej *shadowstate.Error
	if r := <-conflicted.done; !errors.As(r.err, &rej) || rej.Code != 409 {
		t.Errorf("request at 7: %+v; want 409", r)
	}
	select {
	case r := <-later.done:
		t.Errorf("request at 9 answered by messages of other versions: %+v", r)
	default:
	}
	if _, ok := c.pending["c"]; !ok {
		t.Error("request at 9 no longer pending")
	}
}
