//go:build !unix

package benchfleet

import "time"

// selfCPUTime returns -1: this platform gives no process CPU time here.
func selfCPUTime() time.Duration { return -1 }
