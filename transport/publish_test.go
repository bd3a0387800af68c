package transport

import (
	"log/slog"
	"testing"
	"time"
)

// TestLimiter: the publish cap lets 90 % of a second's worth through at once, then
// spaces publishes at the rate, and counts those it delayed.
func TestLimiter(t *testing.T) {
	l := newLimiter(10*time.Millisecond, 100, slog.New(slog.DiscardHandler))
	start := time.Now()
	for range 90 {
		if err := l.wait(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("burst of 90 took %v", d)
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
	// How many of the 11 waited depends on how long the burst took; at 100/s some of
	// them must have, since together they took ≥ 90 ms.
	if n, waited := l.throttled.Load(), time.Duration(l.waited.Load()); n < 1 || n > 11 || waited <= 0 {
		t.Errorf("throttled = %d publishes, %v in all; want between 1 and the 11 past the burst, and some wait", n, waited)
	}
	if err := newLimiter(0, 0, slog.New(slog.DiscardHandler)).wait(t.Context()); err != nil {
		t.Errorf("no limit: %v", err)
	}
}
