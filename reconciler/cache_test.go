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
