// Package shadowstate holds the AWS IoT Device Shadow service's rules in one place:
// shadow documents and messages, the delta and merge rules, request validation with
// AWS's limits, and the topics of the shadow protocol.
//
// The rules are pure functions with no I/O, so that the local service (localiot) and
// the client side (package shadowclient, and the reconciler computing what to report
// and keeping its cache) share one implementation that matches the service byte for
// byte where it matters. The client that speaks the protocol over MQTT is package
// shadowclient.
package shadowstate
