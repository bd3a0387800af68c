package queue

import (
	"errors"
	"math"
	"testing"
	"testing/synctest"
	"time"
)

func TestExponentialDelay(t *testing.T) {
	const ms = time.Millisecond
	tests := []struct {
		name      string
		base, max time.Duration
		n         int
		want      time.Duration
	}{
		{"first failure", 100 * ms, 5 * time.Minute, 0, 100 * ms},
		{"second failure", 100 * ms, 5 * time.Minute, 1, 200 * ms},
		{"tenth failure", 100 * ms, 5 * time.Minute, 9, 51200 * ms},
		{"last below cap", 100 * ms, 5 * time.Minute, 11, 204800 * ms},
		{"capped", 100 * ms, 5 * time.Minute, 12, 5 * time.Minute},
		{"base equals max", time.Second, time.Second, 0, time.Second},
		{"62 doublings fit", time.Nanosecond, math.MaxInt64, 62, 1 << 62},
		{"63 doublings saturate", time.Nanosecond, math.MaxInt64, 63, math.MaxInt64},
		{"64 doublings saturate", time.Nanosecond, math.MaxInt64, 64, math.MaxInt64},
		{"huge attempt count", 100 * ms, 5 * time.Minute, 1 << 40, 5 * time.Minute},
		{"max int attempt count", 100 * ms, 5 * time.Minute, math.MaxInt, 5 * time.Minute},
		{"shift would overflow", time.Hour, math.MaxInt64, 40, math.MaxInt64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := exponentialDelay(tt.base, tt.max, tt.n); got != tt.want {
				t.Errorf("exponentialDelay(%v, %v, %d) = %v, want %v", tt.base, tt.max, tt.n, got, tt.want)
			}
		})
	}
}

func TestDurationOfSecondsSaturates(t *testing.T) {
	tests := []struct {
		s    float64
		want time.Duration
	}{
		{0, 0},
		{0.1, 100 * time.Millisecond},
		{1.5, 1500 * time.Millisecond},
		{1e300, math.MaxInt64},
		{math.Inf(1), math.MaxInt64},
	}
	for _, tt := range tests {
		if got := durationOfSeconds(tt.s); got != tt.want {
			t.Errorf("durationOfSeconds(%v) = %v, want %v", tt.s, got, tt.want)
		}
	}
}

func TestNewRateLimiterOptions(t *testing.T) {
	tests := []struct {
		name    string
		opts    RateLimitOptions
		wantErr bool
	}{
		{"zero value", RateLimitOptions{}, false},
		{"no overall limit", RateLimitOptions{QPS: math.Inf(1)}, false},
		{"base above default max", RateLimitOptions{BaseDelay: time.Hour}, false},
		{"negative base", RateLimitOptions{BaseDelay: -time.Second}, true},
		{"negative max", RateLimitOptions{MaxDelay: -time.Second}, true},
		{"base above max", RateLimitOptions{BaseDelay: time.Second, MaxDelay: time.Millisecond}, true},
		{"negative qps", RateLimitOptions{QPS: -1}, true},
		{"NaN qps", RateLimitOptions{QPS: math.NaN()}, true},
		{"negative burst", RateLimitOptions{Burst: -1}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := NewRateLimiter[string](tt.opts)
			if tt.wantErr {
				if !errors.Is(err, ErrInvalidRateLimit) {
					t.Errorf("NewRateLimiter(%+v) error = %v, want %v", tt.opts, err, ErrInvalidRateLimit)
				}
				return
			}
			if err != nil || l == nil {
				t.Fatalf("NewRateLimiter(%+v) = %v, %v", tt.opts, l, err)
			}
		})
	}
}

func TestRateLimiterPerKeyBackoff(t *testing.T) {
	l, err := NewRateLimiter[string](RateLimitOptions{QPS: math.Inf(1)})
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultBaseDelay
	for i := range 1000 { // Far past the point where 100ms << i would overflow.
		if got := l.When("a"); got != want {
			t.Fatalf("When #%d = %v, want %v", i+1, got, want)
		}
		want = min(2*want, DefaultMaxDelay)
	}
	if n := l.NumRequeues("a"); n != 1000 {
		t.Errorf("NumRequeues(a) = %d, want 1000", n)
	}
	if got := l.When("b"); got != DefaultBaseDelay {
		t.Errorf("When(b) = %v, want %v: keys must back off independently", got, DefaultBaseDelay)
	}
	l.Forget("a")
	if n := l.NumRequeues("a"); n != 0 {
		t.Errorf("NumRequeues(a) after Forget = %d, want 0", n)
	}
	if got := l.When("a"); got != DefaultBaseDelay {
		t.Errorf("When(a) after Forget = %v, want %v", got, DefaultBaseDelay)
	}
	if n := l.NumRequeues("b"); n != 1 {
		t.Errorf("NumRequeues(b) = %d, want 1: Forget(a) must not touch b", n)
	}
}

// TestRateLimiterTakesTheLongerDelay checks that When is the larger of the per-key delay and
// the wait for a token, and that every When takes a token.
func TestRateLimiterTakesTheLongerDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, err := NewRateLimiter[string](RateLimitOptions{BaseDelay: 50 * time.Millisecond, QPS: 10, Burst: 2})
		if err != nil {
			t.Fatal(err)
		}
		const ms = time.Millisecond
		steps := []struct {
			key  string
			want time.Duration
		}{
			{"a", 50 * ms},  // Token 1 of the burst: the per-key delay rules.
			{"a", 100 * ms}, // Token 2.
			{"b", 100 * ms}, // Bucket empty: the next token comes in 100ms.
			{"a", 200 * ms}, // Per-key 200ms; the token would come in 200ms too.
			{"a", 400 * ms}, // Per-key 400ms beats the token in 300ms.
			{"c", 400 * ms}, // Tokens are taken even when the per-key delay was longer.
		}
		for i, s := range steps {
			if got := l.When(s.key); got != s.want {
				t.Errorf("step %d: When(%q) = %v, want %v", i, s.key, got, s.want)
			}
		}
	})
}

func TestWorkAddRateLimitedBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newTestWork[string](t)
		retry := func() time.Duration {
			start := time.Now()
			w.AddRateLimited("k")
			mustGet(t, w, "k")
			w.Done("k")
			return time.Since(start)
		}
		want := 100 * time.Millisecond
		for i := range 15 {
			if got := retry(); got != want {
				t.Errorf("retry %d after %v, want %v", i+1, got, want)
			}
			if n := w.NumRequeues("k"); n != i+1 {
				t.Errorf("NumRequeues after retry %d = %d", i+1, n)
			}
			want = min(2*want, 5*time.Minute)
		}
		if want != 5*time.Minute {
			t.Fatalf("test never reached the cap: last want %v", want)
		}
		w.Forget("k")
		if n := w.NumRequeues("k"); n != 0 {
			t.Errorf("NumRequeues after Forget = %d, want 0", n)
		}
		if got := retry(); got != 100*time.Millisecond {
			t.Errorf("retry after Forget after %v, want 100ms", got)
		}
		w.ShutDown()
	})
}

func TestWorkDefaultRateLimiter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := NewWork(WorkOptions[string]{})
		start := time.Now()
		w.AddRateLimited("k")
		mustGet(t, w, "k")
		if got := time.Since(start); got != DefaultBaseDelay {
			t.Errorf("first retry after %v, want %v", got, DefaultBaseDelay)
		}
		w.Done("k")
		w.ShutDown()
	})
}

// TestWorkTokenBucketLimitsOverallRate retries many distinct keys at once: each is on its
// first failure (1 ns per-key delay), so only the shared bucket spaces them out.
func TestWorkTokenBucketLimitsOverallRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const qps, burst, keys = 10, 5, 50
		limiter, err := NewRateLimiter[int](RateLimitOptions{BaseDelay: time.Nanosecond, MaxDelay: time.Nanosecond, QPS: qps, Burst: burst})
		if err != nil {
			t.Fatal(err)
		}
		w := NewWork(WorkOptions[int]{RateLimiter: limiter})
		// at returns when the i-th retry (from 0) is due: a burst at once, then 1/qps apart.
		at := func(i int) time.Duration {
			return max(time.Nanosecond, time.Duration(i-burst+1)*time.Second/qps)
		}
		start := time.Now()
		for k := range keys {
			w.AddRateLimited(k)
		}
		for k := range keys {
			mustGet(t, w, k)
			if got := time.Since(start); got != at(k) {
				t.Errorf("key %d ran after %v, want %v", k, got, at(k))
			}
			w.Done(k)
		}
		// After a long idle time the bucket is full again, but holds no more than burst.
		w.AddAfter(-1, time.Minute)
		mustGet(t, w, -1)
		w.Done(-1)
		start = time.Now()
		for k := range burst + 1 {
			w.AddRateLimited(keys + k)
		}
		for k := range burst + 1 {
			mustGet(t, w, keys+k)
			if got := time.Since(start); got != at(k) {
				t.Errorf("after refill, retry %d ran after %v, want %v", k, got, at(k))
			}
			w.Done(keys + k)
		}
		w.ShutDown()
	})
}
