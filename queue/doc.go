// Package queue provides the rate-limited, de-duplicating work queue of keys that the
// reconciler's controllers run on, with controller-runtime semantics, and the rate
// limiters that space its retries.
package queue
