// Package queue provides the two queues shadowsync runs on: the bounded offline publish
// queue that holds messages while the connection is down, and a rate-limited,
// de-duplicating work queue of keys with controller-runtime semantics.
package queue
