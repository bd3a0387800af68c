package reconciler

import (
	"slices"
	"testing"

	"github.com/shadowsync/shadowsync/shadowstate"
)

// The ack book hands a shadow's reconcile every ack held for it, and past its bound
// acknowledges the oldest at once, whichever shadow it belongs to.
func TestAckBook(t *testing.T) {
	b := newAckBook(3)
	var acked []string
	ack := func(name string) func() { return func() { acked = append(acked, name) } }
	a, c := shadowstate.ID{Thing: "a"}, shadowstate.ID{Thing: "c"}
	b.hold(a, ack("a1"))
	b.hold(c, ack("c1"))
	b.hold(a, ack("a2"))
	if early := b.hold(c, ack("c2")); early != 1 || !slices.Equal(acked, []string{"a1"}) {
		t.Fatalf("past the bound: %d acked early, acked %q; want a1 only", early, acked)
	}
	if got := b.take(a); len(got) != 1 {
		t.Fatalf("take(a) = %d acks, want 1 (a2)", len(got))
	} else {
		got[0]()
	}
	for _, f := range b.take(c) {
		f()
	}
	if want := []string{"a1", "a2", "c1", "c2"}; !slices.Equal(acked, want) {
		t.Errorf("acked %q, want %q", acked, want)
	}
	if b.len() != 0 || b.take(a) != nil {
		t.Errorf("book not empty: %d held", b.len())
	}
}
