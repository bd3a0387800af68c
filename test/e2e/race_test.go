//go:build race

package e2e_test

// raceEnabled says the tests were built with -race, so the example programs are too
// (their packages then come from the same build cache).
const raceEnabled = true
