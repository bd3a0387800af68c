//go:build unix

package benchfleet

import (
	"syscall"
	"time"
)

// selfCPUTime returns this process's CPU time so far, user and system; -1 if
// unknown.
func selfCPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return -1
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
