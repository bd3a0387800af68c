package benchfleet

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Bounds on a member's life, so that no wait of the bench is unbounded.
const (
	memberReadyTimeout = 30 * time.Second // from spawn to its ready line
	memberTermTimeout  = 15 * time.Second // from SIGTERM to exit, before SIGKILL
	memberKillTimeout  = 5 * time.Second  // from SIGKILL to exit
)

// fleetSide is the Side run by n member processes of one shared-subscription group,
// each started with command (FleetOptions.Member) and running RunMember. It is a
// CPUMeter: the members' CPU time.
type fleetSide struct {
	command    []string // the member's command line, before its flags
	endpoint   string
	group      string
	n          int
	workers    int
	logLevel   string
	cpuProfile string // "" for none; else member i writes cpuProfile.p<i>
	stderr     io.Writer
	log        *slog.Logger

	members []*member
}

// member is one running member process.
type member struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser // never written; held so that it stays open (a lost *os.File is closed by its finalizer) until Wait closes it
	name  string
	ready chan struct{} // closed at its ready line
	done  chan struct{} // closed once it has exited and its output is read
	err   error         // its exit error; read after done

	mu    sync.Mutex
	stats *memberStats // from its stats line, if it printed one
}

var (
	_ Side     = (*fleetSide)(nil)
	_ CPUMeter = (*fleetSide)(nil)
)

// Start spawns the members and waits until each is ready. On failure it stops those
// it started.
func (f *fleetSide) Start(ctx context.Context) error {
	for i := range f.n {
		m, err := f.spawn(i)
		if err != nil {
			f.Stop()
			return err
		}
		f.members = append(f.members, m)
	}
	timer := time.NewTimer(memberReadyTimeout)
	defer timer.Stop()
	for _, m := range f.members {
		var err error
		select {
		case <-m.ready:
		case <-m.done:
			err = fmt.Errorf("%s: %w: %v", m.name, errMemberExited, m.err)
		case <-timer.C:
			err = fmt.Errorf("%s: not ready in %v", m.name, memberReadyTimeout)
		case <-ctx.Done():
			err = ctx.Err()
		}
		if err != nil {
			f.Stop()
			return err
		}
	}
	f.log.Info("fleet: members ready", "processes", f.n)
	return nil
}

func (f *fleetSide) spawn(i int) (*member, error) {
	name := fmt.Sprintf("%s-p%d", f.group, i)
	// The flags of MemberOptions.
	args := append(slices.Clone(f.command[1:]),
		"--endpoint", f.endpoint, "--group", f.group, "--prefix", thingPrefix,
		"--client-id", name, "--workers", fmt.Sprint(f.workers), "--log-level", f.logLevel, "--stdin-is-parent")
	if f.cpuProfile != "" {
		args = append(args, "--cpuprofile", fmt.Sprintf("%s.p%d", f.cpuProfile, i))
	}
	cmd := exec.Command(f.command[0], args...)
	cmd.Stderr = f.stderr
	cmd.WaitDelay = memberKillTimeout // bounds the copy of its stderr after it exits
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	// The member exits when this pipe closes, which the kernel does when this process
	// ends, however it ends: no member outlives the bench.
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start fleet member %s: %w", name, err)
	}
	m := &member{cmd: cmd, stdin: in, name: name, ready: make(chan struct{}), done: make(chan struct{})}
	read := make(chan struct{})
	go func() {
		defer close(read)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, readyPrefix):
				select {
				case <-m.ready:
				default:
					close(m.ready)
				}
			case strings.HasPrefix(line, statsPrefix):
				var st memberStats
				if json.Unmarshal([]byte(strings.TrimPrefix(line, statsPrefix)), &st) == nil {
					m.mu.Lock()
					m.stats = &st
					m.mu.Unlock()
				}
			}
		}
	}()
	go func() {
		<-read // Wait closes the pipe: read it to the end first
		m.err = cmd.Wait()
		close(m.done)
	}()
	return m, nil
}

// Stop sends every member SIGTERM, and SIGKILL to any still running after
// memberTermTimeout, and waits for them to exit, each wait bounded.
func (f *fleetSide) Stop() {
	var wg sync.WaitGroup
	for _, m := range f.members {
		wg.Go(func() { m.stop(f.log) })
	}
	wg.Wait()
}

func (m *member) stop(log *slog.Logger) {
	select {
	case <-m.done:
		return
	default:
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
		return
	case <-time.After(memberTermTimeout):
	}
	log.Warn("fleet member ignored SIGTERM; killing it", "member", m.name, "after", memberTermTimeout)
	_ = m.cmd.Process.Kill()
	select {
	case <-m.done:
	case <-time.After(memberKillTimeout):
		log.Error("fleet member still running after SIGKILL", "member", m.name, "pid", m.cmd.Process.Pid)
	}
}

// CPUTime returns the members' CPU time so far; negative if any is unknown.
func (f *fleetSide) CPUTime() time.Duration {
	pids := make(processes, len(f.members))
	for i, m := range f.members {
		pids[i] = m.cmd.Process.Pid
	}
	return pids.CPUTime()
}

// stats sums the stats lines of the members that printed one; call it after Stop.
func (f *fleetSide) stats() memberStats {
	sum := memberStats{Reconciles: map[string]int{}, Requests: map[string]int{}}
	for _, m := range f.members {
		m.mu.Lock()
		st := m.stats
		m.mu.Unlock()
		if st == nil {
			f.log.Warn("fleet member printed no stats", "member", m.name)
			continue
		}
		for k, v := range st.Reconciles {
			sum.Reconciles[k] += v
		}
		for k, v := range st.Requests {
			sum.Requests[k] += v
		}
	}
	return sum
}

// errMemberExited is returned when a member exits before it is ready.
var errMemberExited = errors.New("fleet member exited before it was ready")
