package reconciler

import (
	"fmt"
	"testing"

	"github.com/shadowsync/shadowsync/shadowstate"
)

func TestShadowSetFleetBoundAndPrefix(t *testing.T) {
	s := newShadowSet(&Fleet{Prefix: "dev-", MaxShadows: 3}, "")
	if s.get(shadowstate.ID{Thing: "other"}) != nil || s.get(shadowstate.ID{Thing: "dev-1", Name: "cfg"}) != nil {
		t.Fatal("a shadow outside the fleet was admitted")
	}
	busy := s.get(shadowstate.ID{Thing: "dev-0"})
	busy.run.TryLock() // being reconciled: never evicted
	defer busy.run.Unlock()
	for i := 1; i <= 5; i++ {
		s.get(shadowstate.ID{Thing: fmt.Sprintf("dev-%d", i)})
	}
	if got := s.len(); got != 3 {
		t.Fatalf("%d shadows held, want the bound of 3", got)
	}
	var held []string
	for _, it := range s.all() {
		held = append(held, it.id.Thing)
	}
	if fmt.Sprint(held) != "[dev-5 dev-4 dev-0]" {
		t.Errorf("held %v, want the two most recent and the busy one", held)
	}
	// Using a shadow keeps it: dev-4 is touched, then a new one evicts dev-5.
	s.get(shadowstate.ID{Thing: "dev-4"})
	s.get(shadowstate.ID{Thing: "dev-6"})
	held = held[:0]
	for _, it := range s.all() {
		held = append(held, it.id.Thing)
	}
	if fmt.Sprint(held) != "[dev-6 dev-4 dev-0]" {
		t.Errorf("held %v after touching dev-4", held)
	}
}

func TestShadowSetFixedList(t *testing.T) {
	s := newShadowSet(nil, "")
	if !s.add(shadowstate.ID{Thing: "a"}) || s.add(shadowstate.ID{Thing: "a"}) {
		t.Fatal("add does not report duplicates")
	}
	if s.get(shadowstate.ID{Thing: "b"}) != nil {
		t.Error("a fixed list admitted an unlisted thing")
	}
	if s.get(shadowstate.ID{Thing: "a"}) == nil {
		t.Error("a listed thing is missing")
	}
}
