//go:build !unix

package benchfleet

import "time"

// cpuTime returns -1: this platform gives no process CPU time here.
func cpuTime() time.Duration { return -1 }
