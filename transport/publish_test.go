package transport

import (
	"testing"
	"time"
)

// TestLimiter: the publish cap lets a second's worth through at once, then spaces
// publishes at the rate.
func TestLimiter(t *testing.T) {
	l := newLimiter(10*time.Millisecond, 100)
	start := time.Now()
	for range 100 {
		if err := l.wait(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("burst of 100 took %v", d)
	}
	start = time.Now()
	for range 11 {
		if err := l.wait(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d < 90*time.Millisecond {
		t.Errorf("11 publishes past the burst took %v, want ≥ 100 ms at 100/s", d)
	}
	if err := newLimiter(0, 0).wait(t.Context()); err != nil {
		t.Errorf("no limit: %v", err)
	}
}
