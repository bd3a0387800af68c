package benchfleet

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"time"
)

// processes is the CPUMeter of a set of processes, by pid: the sum of their CPU
// times, negative if any is unknown. The bench measures itself as processes{its pid}
// and the member processes of RunFleet as theirs.
type processes []int

var _ CPUMeter = processes(nil)

// CPUTime returns the processes' CPU time so far, user and system; negative if any
// is unknown.
func (p processes) CPUTime() time.Duration {
	var total time.Duration
	for _, pid := range p {
		d := processCPUTime(pid)
		if d < 0 {
			return -1
		}
		total += d
	}
	return total
}

// processCPUTime returns the CPU time, user and system, of process pid so far; -1 if
// it cannot be read. This process's comes from getrusage, to the microsecond where
// the platform has it; another's from /proc/<pid>/stat, on Linux only, in clock
// ticks.
func processCPUTime(pid int) time.Duration {
	if pid == os.Getpid() {
		return selfCPUTime()
	}
	if runtime.GOOS != "linux" {
		return -1
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1 // the process has exited
	}
	return parseProcStat(b)
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's CPU times: 100 on every
// Linux architecture Go supports.
const clockTicks = 100

// parseProcStat returns utime + stime of the content of a /proc/<pid>/stat file; -1
// if it is not one.
func parseProcStat(b []byte) time.Duration {
	// The command name, field 2, is in parentheses and may hold spaces: the fields
	// after its closing parenthesis start at field 3 (state); utime and stime are
	// fields 14 and 15.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return -1
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 13 {
		return -1
	}
	utime, err1 := strconv.ParseInt(string(f[11]), 10, 64)
	stime, err2 := strconv.ParseInt(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return -1
	}
	return time.Duration(utime+stime) * time.Second / clockTicks
}
