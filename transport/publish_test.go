package transport

import (
	"log/slog"
	"testing"
	"time"
)

// TestLimiter: the publish cap lets a second's worth through at once, then spaces
// publishes at the rate, and counts those it delayed.
func TestLimiter(t *testing.T) {
	l := newLimiter(10*time.Millisecond, 100, slog.New(slog.DiscardHandler))
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
	if n, waited := l.throttled.Load(), time.Duration(l.waited.Load()); n < 10 || n > 11 || waited < 90*time.Millisecond {
		t.Errorf("throttled = %d publishes, %v in all; want 10 or 11 of the 11 past the burst (the first may find the bucket refilled), ≥ 90 ms", n, waited)
	}
	if err := newLimiter(0, 0, slog.New(slog.DiscardHandler)).wait(t.Context()); err != nil {
		t.Errorf("no limit: %v", err)
	}
}
