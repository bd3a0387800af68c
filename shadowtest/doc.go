// Package shadowtest helps users test their own device logic: it starts localiot for a
// test suite, creates things, sets desired state as an app would, and offers Gomega
// matchers for shadows.
package shadowtest
