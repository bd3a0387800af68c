package reconciler

import (
	"testing"

	"github.com/shadowsync/shadowsync/shadowstate"
)

func docAt(version int64, reported shadowstate.Object) *shadowstate.Document {
	d := &shadowstate.Document{Version: version}
	d.State.Desired = shadowstate.Object{"name": "kitchen"}
	d.State.Reported = reported
	return d
}

// A read served before this controller's own report, whose reply arrives after the
// report was accepted, is older than the cache: it must neither replace the cache nor
// count as the shadow's versions going backwards.
func TestCacheReadOvertakenByOwnReport(t *testing.T) {
	e := newEntry()
	e.setDocument(docAt(6, shadowstate.Object{"name": "hall"}), e.mark())
	mark := e.mark() // a re-read is sent
	e.expectOwn(7)
	e.reportAccepted(shadowstate.Object{"name": "kitchen"}, 7) // the report's reply comes first
	if e.setDocument(docAt(6, shadowstate.Object{"name": "hall"}), mark) {
		t.Error("the overtaken read was taken for the versions going backwards")
	}
	_, reported, version, _ := e.snapshot()
	if version != 7 || reported["name"] != "kitchen" {
		t.Errorf("cache at version %d with reported %v, want version 7 with the report's name kitchen", version, reported)
	}
}

// With no change during the read, a lower version is the truth: the service went back.
func TestCacheReadBelowTheCacheWithNoChangeIsBackwards(t *testing.T) {
	e := newEntry()
	e.setDocument(docAt(9, shadowstate.Object{"name": "hall"}), e.mark())
	if !e.setDocument(docAt(2, shadowstate.Object{"name": "attic"}), e.mark()) {
		t.Error("a read at version 2 after 9, nothing in between, was not taken as going backwards")
	}
	_, reported, version, _ := e.snapshot()
	if version != 2 || reported["name"] != "attic" {
		t.Errorf("cache at version %d with %v, want the read's version 2", version, reported)
	}
	if !e.needsReconcile(false) {
		t.Error("the shadow read after its versions went back does not need a reconcile")
	}
}

// The documents message of a shadow's creation has no previous state, as has that of
// a shadow created again after its deletion was forgotten. One delivered late — on a
// pool, a copy that came on another connection after the controller's report was
// accepted — must not take the cache back to it: the cache marks itself for a
// re-read, whose answer tells a late message from a shadow created again. Before, it
// took the message for a re-creation, and the next reconcile reported at the old
// version, to be refused with 409.
func TestCacheLateCreationMessage(t *testing.T) {
	created := &shadowstate.DocumentsMessage{}
	created.Current.Version = 1
	created.Current.State.Desired = shadowstate.Object{"n": 1}
	e := newEntry()
	if n := e.applyDocuments(created, false); n != needReconcile {
		t.Fatalf("the shadow's creation with a desired state needs %v, want a reconcile", n)
	}
	e.expectOwn(2)
	e.reportAccepted(shadowstate.Object{"n": 1}, 2)
	if n := e.applyDocuments(created, false); n != needCheck {
		t.Errorf("a creation message older than the cache needs %v, want a check (a re-read)", n)
	}
	if e.current() {
		t.Error("the cache still counts as current after an older creation message")
	}
	_, reported, version, _ := e.snapshot()
	if version != 2 || reported["n"] != 1 {
		t.Errorf("cache at version %d with reported %v, want the report's version 2 with n 1", version, reported)
	}
	// The re-read then finds the shadow created again, at version 1: that is the truth.
	again := docAt(1, nil)
	if !e.setDocument(again, e.mark()) {
		t.Error("a re-read at version 1 after 2, nothing in between, was not taken as going backwards")
	}
	if _, _, version, _ := e.snapshot(); version != 1 {
		t.Errorf("cache at version %d after the re-read, want 1", version)
	}
}

// After the shadow service went back in time (a backup restored), messages arrive
// with versions below the cache's. A read overtaken by one of them must not settle
// the cache: it would keep the newest version events had announced before, and the
// application's next change, at a version below it, would go unannounced — the
// device would miss it until a periodic resync. (Seen once in
// TestShadowServiceRestoredFromBackupIsReconciledAgainst under load.)
func TestCacheReadOvertakenAfterVersionsWentBack(t *testing.T) {
	e := newEntry()
	e.setDocument(docAt(20, shadowstate.Object{"name": "kitchen"}), e.mark())
	docs := func(v int64, desired string) *shadowstate.DocumentsMessage {
		d := &shadowstate.DocumentsMessage{Previous: &shadowstate.Snapshot{Version: v - 1}}
		d.Current.Version = v
		d.Current.State.Desired = shadowstate.Object{"name": desired}
		d.Current.State.Reported = shadowstate.Object{"name": "kitchen"}
		return d
	}
	if n := e.applyDocuments(docs(5, "hall"), false); n != needCheck {
		t.Fatalf("a documents message below the cache's version needs %v, want a check (a re-read)", n)
	}
	mark := e.mark() // the re-read is sent
	e.applyDocuments(docs(6, "attic"), false)
	e.setDocument(docAt(5, shadowstate.Object{"name": "kitchen"}), mark) // its answer, overtaken
	if e.current() {
		t.Fatal("a read overtaken by an older event settled the cache")
	}
	// The run the event queued reads again, with nothing in between: the versions
	// went back, and the cache starts over from them.
	if !e.setDocument(docAt(6, shadowstate.Object{"name": "kitchen"}), e.mark()) {
		t.Error("the read that no event overtook was not taken as going backwards")
	}
	e.expectOwn(7)
	e.reportAccepted(shadowstate.Object{"name": "attic"}, 7)
	if n := e.applyDocuments(docs(8, "cellar"), false); n != needReconcile {
		t.Errorf("the application's next change, at version 8, needs %v, want a reconcile", n)
	}
}
