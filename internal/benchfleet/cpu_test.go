package benchfleet

import (
	"os"
	"runtime"
	"testing"
	"time"
)

func TestParseProcStat(t *testing.T) {
	// A command name with spaces and a parenthesis; utime 250 and stime 50 ticks.
	stat := "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 1 2 3"
	if got, want := parseProcStat([]byte(stat)), 3*time.Second; got != want {
		t.Errorf("parseProcStat = %v, want %v", got, want)
	}
	for _, bad := range []string{"", "1 (x) S 1 2", "1 (x) S 1 2 3 4 5 6 7 8 9 10 u s"} {
		if got := parseProcStat([]byte(bad)); got >= 0 {
			t.Errorf("parseProcStat(%q) = %v, want negative", bad, got)
		}
	}
}

func TestProcessesCPUTime(t *testing.T) {
	if runtime.GOOS == "linux" || runtime.GOOS == "darwin" {
		if d := (processes{os.Getpid()}).CPUTime(); d < 0 {
			t.Errorf("this process's CPU time %v, want known", d)
		}
	}
	if d := (processes{os.Getpid(), -1}).CPUTime(); d >= 0 {
		t.Errorf("CPU time with an unknown process %v, want negative", d)
	}
	if d := (processes{}).CPUTime(); d != 0 {
		t.Errorf("CPU time of no process %v, want 0", d)
	}
}
