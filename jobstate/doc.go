// Package jobstate holds the AWS IoT Jobs service's device-facing rules in one place:
// the wire types of the jobs MQTT API (requests, replies, rejections, notifications),
// request validation with AWS's limits and error codes, the job execution state
// machine (which transitions a device may make, version bumps, step and in-progress
// timeouts given a clock), the order of a thing's pending executions, and the topics
// under $aws/things/{thing}/jobs/.
//
// The rules are pure functions with no I/O, like package shadowstate's for shadows, so
// that the local service (localiot) and a device-side jobs client can share one
// implementation. docs/jobs.md lists the AWS documentation each rule follows and the
// decisions taken where it is silent.
package jobstate
