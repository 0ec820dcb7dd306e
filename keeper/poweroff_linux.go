package keeper

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// asked is what the keeper did to have the root powered off.
type asked struct {
	PID     int            // the init's
	Signal  syscall.Signal // sent; 0 when a command ran
	Command string         // the root's poweroff, as a path in the root
	Output  string         // what it printed, bounded (outputMax)
	Note    string         // why auto chose a fallback
}

// outputMax bounds what the keeper keeps of the command's output: it
// goes to the log and, on failure, into the answer.
const outputMax = 1024

// ask asks the init (PID 1 by default) to power off, as the setting says
// (the package comment of poweroff.go). The request itself carries
// nothing: no part of it reaches the command or the signal.
func (p PowerOff) ask(ctx context.Context) (asked, error) {
	a := asked{PID: p.InitPID}
	if a.PID == 0 {
		a.PID = 1
	}
	if p.Signal == SignalCommand {
		return p.command(ctx, a)
	}
	sig, err := ParseSignal(p.Signal)
	if err != nil {
		return a, err
	}
	if sig == 0 {
		exe, err := os.Readlink("/proc/" + strconv.Itoa(a.PID) + "/exe")
		if err != nil {
			return a, fmt.Errorf("power-off auto: which init runs as pid %d: %w", a.PID, err)
		}
		if sig = methodFor(exe); sig == 0 {
			_, why := p.findCommand()
			if why == "" {
				return p.command(ctx, a)
			}
			sig = sigBusybox
			a.Note = fmt.Sprintf("init %s is neither systemd nor busybox, and %s: sent %s (busybox init's) instead",
				exe, why, signalName(sig))
		}
	}
	a.Signal = sig
	if err := syscall.Kill(a.PID, sig); err != nil {
		return a, fmt.Errorf("kill(%d, %s) = %w", a.PID, signalName(sig), err)
	}
	return a, nil
}

// findCommand is the first usable PowerOffCommands in the root, as a
// path in the root; else why none is.
func (p PowerOff) findCommand() (string, string) {
	var skipped []string
	for _, c := range PowerOffCommands {
		fi, err := os.Stat(p.inRoot(c)) // follows links: poweroff -> halt, -> busybox
		switch {
		case errors.Is(err, os.ErrNotExist):
			continue
		case err != nil:
			skipped = append(skipped, fmt.Sprintf("%s: %v", c, err))
		case !fi.Mode().IsRegular() || fi.Mode()&0o111 == 0:
			skipped = append(skipped, c+": not an executable file")
		case fi.Mode()&0o022 != 0:
			// Only root may have been able to put it there: one that others
			// can write could be anyone's program, run as root.
			skipped = append(skipped, fmt.Sprintf("%s: writable by group or others (%v)", c, fi.Mode().Perm()))
		default:
			return c, ""
		}
	}
	if len(skipped) == 0 {
		return "", "the root has no poweroff in " + strings.Join(PowerOffCommands, ", ")
	}
	return "", "no usable poweroff in the root (" + strings.Join(skipped, "; ") + ")"
}

func (p PowerOff) inRoot(name string) string {
	if p.Root == "" {
		return name
	}
	return filepath.Join(p.Root, name)
}

// command runs the root's poweroff: no shell, no arguments, nothing of
// the request, a fixed environment, stdin from /dev/null, in its own
// process group, which is killed after the timeout.
func (p PowerOff) command(ctx context.Context, a asked) (asked, error) {
	c, why := p.findCommand()
	if c == "" {
		return a, errors.New("power-off command: " + why)
	}
	a.Command = c
	timeout := p.Timeout
	if timeout == 0 {
		timeout = CommandTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out := &boundedBuffer{max: outputMax}
	cmd := exec.CommandContext(ctx, p.inRoot(c))
	cmd.Args = []string{filepath.Base(c)} // halt, runit-init and busybox look at argv[0]
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C"}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// A child it left behind that holds the output open must not hold the
	// answer too.
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	a.Output = out.String()
	switch {
	case ctx.Err() == context.DeadlineExceeded:
		return a, fmt.Errorf("the root's %s did not finish within %s (killed): %q", c, timeout, a.Output)
	case err != nil:
		return a, fmt.Errorf("the root's %s: %w: %q", c, err, a.Output)
	}
	return a, nil
}

// boundedBuffer keeps the first max bytes written to it and counts the
// rest; stdout and stderr write to it from two goroutines.
type boundedBuffer struct {
	mu      sync.Mutex
	max     int
	b       []byte
	dropped int
}

func (w *boundedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := min(len(p), w.max-len(w.b))
	w.b = append(w.b, p[:n]...)
	w.dropped += len(p) - n
	return len(p), nil
}

func (w *boundedBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := strings.TrimSpace(strings.ToValidUTF8(string(w.b), "?"))
	if w.dropped > 0 {
		s += fmt.Sprintf(" [%d bytes more]", w.dropped)
	}
	return s
}
