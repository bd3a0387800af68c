// Package reconciler is the controller layer: typed devices, a Reconcile function per
// device type, requeue and backoff, and write-back of reported state, all level-triggered
// from a cached copy of each managed shadow.
package reconciler
