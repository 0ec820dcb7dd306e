package vmlab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// EndGrace is how long a process gets between SIGTERM and SIGKILL.
const EndGrace = 5 * time.Second

// Proc is a process the lab started, in its own process group, with its
// output in Log. It is ended at the test's cleanup if still running.
type Proc struct {
	Name string
	Log  string // file holding stdout and stderr
	cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
	err  error
}

// Start runs argv with stdout and stderr appended to logPath and ends it
// (its whole process group) at t's cleanup: SIGTERM, EndGrace, SIGKILL.
func Start(t testing.TB, name, logPath string, argv ...string) *Proc {
	t.Helper()
	p, err := start(name, logPath, argv...)
	if err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() { p.End() })
	return p
}

func start(name, logPath string, argv ...string) (*Proc, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), RunTagEnv+"="+runTag())
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
	}
	p := &Proc{Name: name, Log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

// Pid is the process's id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Running says whether the process has not exited yet.
func (p *Proc) Running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Err is the exit error once the process has exited.
func (p *Proc) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Wait waits up to d for the process to exit and reports whether it did.
func (p *Proc) Wait(d time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(d):
		return false
	}
}

// Kill9 sends SIGKILL to the process group (a crash, not an ending) and
// waits for the exit.
func (p *Proc) Kill9() {
	syscall.Kill(-p.Pid(), syscall.SIGKILL)
	<-p.done
}

// End sends SIGTERM to the process group, and SIGKILL after EndGrace if
// the process has not exited; it returns once the process has.
func (p *Proc) End() {
	if !p.Running() {
		return // Kill9 or its own exit; its group was not signalled since
	}
	syscall.Kill(-p.Pid(), syscall.SIGTERM)
	if !p.Wait(EndGrace) {
		syscall.Kill(-p.Pid(), syscall.SIGKILL)
		<-p.done
	}
	// What is left of the group (a child that outlived its leader), just
	// after the leader was reaped: the group id cannot be reused while a
	// member lives.
	syscall.Kill(-p.Pid(), syscall.SIGKILL)
}

// EndPidFile ends a daemon that left its group (nfs-ganesha forks and
// calls setsid) by the pid in path: SIGTERM, EndGrace, SIGKILL.
func EndPidFile(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return fmt.Errorf("pid file %s: %q is not a pid", path, b)
	}
	return EndPid(pid)
}

// EndPid ends a process that is not this one's child.
func EndPid(pid int) error {
	if syscall.Kill(pid, syscall.SIGTERM) != nil {
		return nil // gone
	}
	for end := time.Now().Add(EndGrace); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if syscall.Kill(pid, 0) != nil {
			return nil
		}
	}
	syscall.Kill(pid, syscall.SIGKILL)
	return nil
}

// Run runs argv to completion and returns its combined output, with the
// command line in the error.
func Run(argv ...string) (string, error) {
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}
