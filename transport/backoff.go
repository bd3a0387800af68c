package transport

import (
	"math/rand/v2"
	"time"
)

// Backoff returns how long to wait before reconnect attempt n (0 for the first
// reconnect after a loss, counting up while attempts fail or connections stay up
// less than Config.StableAfter). It must be safe for concurrent use; the ones made
// by ExponentialBackoff are stateless.
type Backoff func(attempt int) time.Duration

// ExponentialBackoff returns the progressive backoff of the AWS IoT Device SDK for
// Python v1, min(2^attempt × base, max). With jitter in (0, 1] each wait is drawn
// uniformly from [(1-jitter) × d, d], so clients cut off together do not reconnect
// together; 0 means no jitter. Out-of-range arguments are clamped: base to at least
// 1 ms, max to at least base, jitter into [0, 1].
func ExponentialBackoff(base, max time.Duration, jitter float64) Backoff {
	base = maxDuration(base, time.Millisecond)
	max = maxDuration(max, base)
	jitter = min(1, maxFloat(jitter, 0))
	return func(attempt int) time.Duration {
		d := base
		for i := 0; i < attempt && d < max; i++ {
			d *= 2
		}
		d = min(d, max)
		if jitter > 0 {
			d -= time.Duration(rand.Float64() * jitter * float64(d))
		}
		return d
	}
}

func maxDuration(a, b time.Duration) time.Duration {
	if a > b {
		return a
	}
	return b
}

func maxFloat(a, b float64) float64 {
	if a > b {
		return a
	}
	return b
}

// clock is the time source of a Conn's connection loop; tests replace it to control
// backoff waits without sleeping.
type clock interface {
	Now() time.Time
	// After returns a channel that receives once d has passed.
	After(d time.Duration) <-chan time.Time
}

// realClock is the wall clock.
type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
