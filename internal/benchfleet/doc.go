// Package benchfleet is the workload behind `shadowsync bench`: an echo fleet of N
// things, driven for R rounds by an app that changes every thing's desired state once
// per round, and timed by a watcher from each desired update's acceptance to the
// acceptance of the matching report.
//
// Whatever echoes the fleet is a Side, measured by the same code: a warm-up round,
// then the measured rounds, with latency, throughput, heap and — through a CPUMeter —
// CPU time per update.
//
// Run compares two sides against the same server in the same process, each handling
// the fleet on one connection: the framework (a reconciler.Manager with an echo
// controller) and a bare paho client doing the minimum — subscribe to the delta
// wildcard, publish each delta back as reported — which is the floor the framework
// adds its cost on top of. Results are meant to be read as ratios against that floor.
//
// RunFleet measures the fleet echo run by 1, 2… member processes of one
// shared-subscription group instead, each a RunMember started from a command line the
// caller gives (shadowsync re-executes its own binary), and reports throughput
// against one process.
package benchfleet
