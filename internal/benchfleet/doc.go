// Package benchfleet is the workload behind `shadowsync bench`: an echo fleet of N
// things handled on one connection, driven for R rounds by an app that changes every
// thing's desired state once per round, and timed by a watcher from each desired
// update's acceptance to the acceptance of the matching report.
//
// The same workload runs twice against the same server in the same process: once
// handled by the framework (a reconciler.Manager with an echo controller) and once by
// a bare paho client doing the minimum — subscribe to the delta wildcard, publish each
// delta back as reported — which is the floor the framework adds its cost on top of.
// Results are meant to be read as ratios against that floor.
package benchfleet
