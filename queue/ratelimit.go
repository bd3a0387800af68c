package queue

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"time"
)

// Defaults of RateLimitOptions. They are constants, not variables, so no caller can change
// another's defaults.
const (
	DefaultBaseDelay = 100 * time.Millisecond
	DefaultMaxDelay  = 5 * time.Minute
	DefaultQPS       = 10.0
	DefaultBurst     = 100
)

// ErrInvalidRateLimit is returned by NewRateLimiter for options it cannot honour; match it with
// errors.Is.
var ErrInvalidRateLimit = errors.New("queue: invalid rate limit")

// RateLimiter decides how long a failed key waits before it is retried. Work.AddRateLimited
// asks it; Work.Forget and Work.NumRequeues pass through to it. Implementations must be safe for
// concurrent use.
type RateLimiter[K comparable] interface {
	// When records one more failure of key and returns how long key should wait before its
	// next run.
	When(key K) time.Duration
	// Forget clears key's failure history, so its next When starts again from the shortest
	// delay. Call it when key was handled successfully (or given up on), so the limiter does
	// not hold keys forever.
	Forget(key K)
	// NumRequeues returns how many failures of key were recorded since it was last forgotten.
	NumRequeues(key K) int
}

// RateLimitOptions configures NewRateLimiter. The zero value gives the defaults: 100 ms per
// key doubling to 5 min, under an overall 10 retries per second with a burst of 100.
type RateLimitOptions struct {
	// BaseDelay is a key's delay after its first failure; each further failure doubles it.
	// Defaults to 100ms.
	BaseDelay time.Duration
	// MaxDelay caps the per-key delay. Defaults to 5m. Must not be below BaseDelay.
	MaxDelay time.Duration
	// QPS is the overall number of retries per second allowed across all keys, so a burst of
	// failures cannot hammer the broker. Defaults to 10; math.Inf(1) turns the overall limit off.
	QPS float64
	// Burst is how many retries may run at once before QPS applies. Defaults to 100.
	Burst int
}

// NewRateLimiter returns the default RateLimiter: for each key the larger of a per-key
// exponential backoff (BaseDelay * 2^failures, capped at MaxDelay) and the wait for a token
// from one token bucket shared by all keys (QPS, Burst). Every When takes a token, so retries
// of many keys are spread out even when each key is on its first failure. The result is safe
// for concurrent use. It returns an error wrapping ErrInvalidRateLimit for negative or
// inconsistent options.
func NewRateLimiter[K comparable](opts RateLimitOptions) (RateLimiter[K], error) {
	if opts.BaseDelay == 0 {
		opts.BaseDelay = DefaultBaseDelay
	}
	if opts.MaxDelay == 0 {
		opts.MaxDelay = max(DefaultMaxDelay, opts.BaseDelay)
	}
	if opts.QPS == 0 {
		opts.QPS = DefaultQPS
	}
	if opts.Burst == 0 {
		opts.Burst = DefaultBurst
	}
	switch {
	case opts.BaseDelay < 0 || opts.MaxDelay < 0:
		return nil, fmt.Errorf("%w: negative delay (base %v, max %v)", ErrInvalidRateLimit, opts.BaseDelay, opts.MaxDelay)
	case opts.BaseDelay > opts.MaxDelay:
		return nil, fmt.Errorf("%w: base delay %v above max delay %v", ErrInvalidRateLimit, opts.BaseDelay, opts.MaxDelay)
	case math.IsNaN(opts.QPS) || opts.QPS < 0:
		return nil, fmt.Errorf("%w: qps %v", ErrInvalidRateLimit, opts.QPS)
	case opts.Burst < 0:
		return nil, fmt.Errorf("%w: burst %d", ErrInvalidRateLimit, opts.Burst)
	}
	return &rateLimiter[K]{
		base:     opts.BaseDelay,
		max:      opts.MaxDelay,
		qps:      opts.QPS,
		burst:    float64(opts.Burst),
		tokens:   float64(opts.Burst),
		failures: make(map[K]int),
	}, nil
}

// rateLimiter is the default RateLimiter: per-key exponential backoff under one token bucket.
type rateLimiter[K comparable] struct {
	// base and max bound the per-key delay; 0 < base <= max. Never written after construction.
	base, max time.Duration
	// qps (> 0, possibly +Inf) and burst (>= 1) shape the bucket. Never written after construction.
	qps, burst float64

	mu sync.Mutex
	// failures counts When calls per key since its last Forget. A key is absent, never 0.
	failures map[K]int
	// tokens is the bucket's level at time last. It is at most burst and goes negative when
	// tokens are reserved ahead of time; -tokens/qps is then how long until the bucket is
	// back to zero. last is zero until the first When, which starts the bucket full.
	tokens float64
	last   time.Time
}

func (l *rateLimiter[K]) When(key K) time.Duration {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.failures[key]
	l.failures[key] = n + 1
	return max(exponentialDelay(l.base, l.max, n), l.reserveLocked(now))
}

func (l *rateLimiter[K]) Forget(key K) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.failures, key)
}

func (l *rateLimiter[K]) NumRequeues(key K) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failures[key]
}

// reserveLocked takes one token from the bucket at time now and returns how long the caller
// must wait for it to be theirs (0 if one was available). l.mu must be held.
func (l *rateLimiter[K]) reserveLocked(now time.Time) time.Duration {
	if math.IsInf(l.qps, 1) {
		return 0
	}
	if !l.last.IsZero() {
		if elapsed := now.Sub(l.last); elapsed > 0 {
			l.tokens = min(l.burst, l.tokens+elapsed.Seconds()*l.qps)
		}
	}
	if now.After(l.last) {
		l.last = now
	}
	l.tokens--
	if l.tokens >= 0 {
		return 0
	}
	return durationOfSeconds(-l.tokens / l.qps)
}

// exponentialDelay returns base * 2^n capped at limit, without overflowing for any n >= 0.
// It needs 0 < base <= limit.
func exponentialDelay(base, limit time.Duration, n int) time.Duration {
	// base << n <= limit exactly when base <= limit >> n. The right side cannot overflow, and
	// it is 0 for n >= 63, so any huge attempt count saturates at limit.
	if base > limit>>n {
		return limit
	}
	return base << n
}

// durationOfSeconds converts s >= 0 seconds to a Duration, saturating instead of overflowing.
func durationOfSeconds(s float64) time.Duration {
	d := s * float64(time.Second)
	if d >= math.MaxInt64 {
		return math.MaxInt64
	}
	return time.Duration(math.Ceil(d))
}
