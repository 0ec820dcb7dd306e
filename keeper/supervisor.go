package keeper

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"regexp"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The keeper restarted. Nothing else keeps the tunnel, and the NFS root
// travels through it: a keeper that dies (a Go fatal error, such as a data
// race on a map, cannot be recovered; a bug; a stray kill) would freeze
// the root until the return. And nothing could start it again: the key
// was read once from the initramfs, which switch_root deletes, and a
// renewed certificate lives only in the keeper's memory. So `@ferry
// keeper` is a small supervisor, as strongSwan's starter is for charon
// and systemd's Restart=on-failure for its daemons: it holds the tunnel
// state in RAM and runs the keeper proper as its child (a re-exec of
// /proc/self/exe, which works after the file is deleted), handing it the
// state over an inherited socket pair (handover.go). The child reports
// what a successor would need: that it moved into the root, a renewed
// certificate, the disks it marked.
//
// A restarted child must not start inside the root, though: the root
// is on NFS through the tunnel that died with the last child, and every
// path the kernel walks from an NFS directory may wait for the server (a
// permission or attribute check once the cache is dropped: exec, chdir,
// the Go runtime's first open). So the supervisor never moves into the
// root: when the child moves, it opens the root's directory and keeps it.
// It stays in what switch_root left of the initramfs (nothing: rootfs,
// in RAM), mounts proc, sysfs and devtmpfs there before a restart
// (MountBase), and hands the root's directory on: the restarted child
// starts there, opens its tunnel without the root, and moves into the
// root once the tunnel is up (keeper.go, moveIntoRoot). A child that ends abnormally
// (a signal, a non-zero exit) is restarted with back-off; one that exits
// cleanly (SIGTERM at shutdown, the leave logic's end), or any end while
// the system stops, ends the supervisor too.

// RestartDelay is the supervisor's back-off: Min after the first crash,
// doubling up to Max while children keep crashing; a child that lived
// Stable or longer starts the sequence again.
type RestartDelay struct{ Min, Max, Stable time.Duration }

// RestartBackoff is the keeper's: 1 s doubling to 30 s, reset after a
// child that lived 5 minutes.
var RestartBackoff = RestartDelay{Min: time.Second, Max: 30 * time.Second, Stable: 5 * time.Minute}

// Supervisor runs the keeper proper as a child and restarts it.
type Supervisor struct {
	// Exe and Args start a child: /proc/self/exe, argv[0] "@ferry"
	// (systemd spares it at shutdown). Env nil inherits ours.
	Exe  string
	Args []string
	Env  []string
	// Stdout and Stderr are the console; a child's stderr passes through
	// the supervisor, which keeps the first line of a Go crash in it.
	Stdout, Stderr io.Writer
	// Control is PID 1's control channel, handed to each child until one
	// has moved into the root; nil without one.
	Control *os.File
	Backoff RestartDelay
	// OpenRoot opens the root a child moved into; nil is a directory
	// open (O_PATH). Base prepares the supervisor's own root for a child
	// that starts outside the root; nil is MountBase.
	OpenRoot func(dir string) (*os.File, error)
	Base     func() error
	Log      *slog.Logger
	// restarted, when set, hears each restart's reason and delay (tests).
	restarted func(reason string, delay time.Duration)

	// null is the children's stdin, opened at start: what is left of
	// the initramfs after switch_root has no /dev/null.
	null *os.File
	// root is the root the children moved into, handed to restarted ones.
	root *os.File

	mu sync.Mutex
	h  Handover // what the next child gets
}

// Run starts the first child with h and restarts it until it ends
// cleanly or ctx ends (SIGTERM): then SIGTERM goes to the child, and Run
// returns once it has exited.
func (s *Supervisor) Run(ctx context.Context, h Handover) error {
	s.h = h
	if s.OpenRoot == nil {
		s.OpenRoot = openRootDir
	}
	if s.Base == nil {
		s.Base = MountBase
	}
	if f, err := os.Open(os.DevNull); err == nil {
		s.null = f
		defer f.Close()
	}
	var delay time.Duration
	for {
		started := time.Now()
		reason, clean := s.runChild(ctx)
		lived := time.Since(started)
		if ctx.Err() != nil {
			s.Log.Info("keeper supervisor: stopped with its keeper", "keeper", reason)
			return nil
		}
		if clean {
			s.Log.Info("keeper ended cleanly; its supervisor ends too", "lived", lived.Round(time.Millisecond))
			return nil
		}
		if lived >= s.Backoff.Stable {
			delay = 0
		}
		delay = min(max(2*delay, s.Backoff.Min), s.Backoff.Max)
		s.mu.Lock()
		s.h.Restarts++
		s.h.LastRestartReason, s.h.LastRestart = reason, time.Now()
		n := s.h.Restarts
		s.mu.Unlock()
		s.Log.Error("keeper ended abnormally; restarting it", "reason", reason, "lived", lived.Round(time.Millisecond),
			"restart_in", delay, "restart", n)
		if s.restarted != nil {
			s.restarted(reason, delay)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
	}
}

// Handover is what the next child would get (tests).
func (s *Supervisor) Handover() Handover {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.h
}

// runChild starts one child, hands it the state, serves its reports and
// waits for it. It says how it ended and whether that was clean (exit
// status 0).
func (s *Supervisor) runChild(ctx context.Context) (reason string, clean bool) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Sprintf("socketpair for the hand-over: %v", err), false
	}
	ours, theirs := os.NewFile(uintptr(fds[0]), "keeper-link"), os.NewFile(uintptr(fds[1]), "keeper-link")
	defer ours.Close()
	crash := &crashLine{w: s.Stderr}
	cmd := &exec.Cmd{Path: s.Exe, Args: s.Args, Env: s.Env, Dir: "/", Stdout: s.Stdout, Stderr: crash}
	if s.null != nil {
		cmd.Stdin = s.null
	}
	s.mu.Lock()
	h := s.h
	h.Control, h.Root = s.Control != nil, s.root != nil
	cmd.ExtraFiles = []*os.File{theirs, s.Control, s.root} // LinkFD, ControlFD, RootFD (nil: closed)
	if s.root != nil {
		// The child starts here, outside the root: /proc/self/exe and what
		// it opens before its tunnel is up must not need the NFS root.
		if err := s.Base(); err != nil {
			s.Log.Warn("keeper supervisor: mounts for a restarted keeper", "err", err)
		}
	}
	err = cmd.Start()
	s.mu.Unlock()
	theirs.Close()
	if err != nil {
		return fmt.Sprintf("start %s: %v", s.Exe, err), false
	}
	s.Log.Info("keeper started", "pid", cmd.Process.Pid, "restarts", h.Restarts)
	if err := s.handOver(ours, h); err != nil {
		s.Log.Error("keeper hand-over failed; ending the child", "pid", cmd.Process.Pid, "err", err)
		cmd.Process.Kill()
	}
	reports := make(chan struct{})
	go func() { s.serveReports(ours); close(reports) }()
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case <-ctx.Done():
		// The system stops: the child may have had SIGTERM too; it deletes
		// its tunnel when the root allows (leave.go) and exits.
		cmd.Process.Signal(syscall.SIGTERM)
		<-waited
	case <-waited:
	}
	// What the child reported before it died is read to the end (its end
	// of the link closed with it).
	select {
	case <-reports:
	case <-time.After(time.Second):
	}
	return exitReason(cmd.ProcessState, crash.first()), cmd.ProcessState.Success()
}

func (s *Supervisor) handOver(link *os.File, h Handover) error {
	b, err := json.Marshal(h)
	if err != nil {
		return err
	}
	defer clear(b) // the key's bytes
	_, err = link.Write(append(b, '\n'))
	return err
}

// serveReports takes the child's reports into the next hand-over until
// the link closes.
func (s *Supervisor) serveReports(link *os.File) {
	r := bufio.NewReaderSize(link, 64<<10)
	for {
		line, err := readBounded(r, maxHandover)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, os.ErrClosed) {
				s.Log.Warn("keeper link", "err", err)
			}
			return
		}
		var rep report
		if err := json.Unmarshal(line, &rep); err != nil {
			s.Log.Warn("keeper report not understood", "err", err)
			continue
		}
		switch {
		case rep.Chroot != "":
			var ans reply
			if err := s.chroot(rep.Chroot); err != nil {
				ans.Error = err.Error()
			}
			b, _ := json.Marshal(ans)
			link.Write(append(b, '\n'))
		case len(rep.Certs) > 0:
			s.renewed(rep.Certs)
		case rep.Disk != "":
			s.mu.Lock()
			s.h.DisksLate = merge(s.h.DisksLate, rep.Disk)
			s.mu.Unlock()
		}
	}
}

// chroot keeps the root the child moves into, once, before the child
// answers PID 1 (switch_root then moves it): restarted children get it.
// PID 1's control channel is no longer handed on (PID 1 closes it after
// the chroot).
func (s *Supervisor) chroot(dir string) error {
	if _, err := parseChroot("chroot " + dir); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.root != nil {
		return fmt.Errorf("chroot %s: the keeper moved into %s already", dir, s.h.Chrooted)
	}
	f, err := s.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("supervisor: the root to restart the keeper in: %w", err)
	}
	s.root, s.h.Chrooted = f, dir
	if s.Control != nil {
		s.Control.Close()
		s.Control = nil
	}
	s.Log.Info("keeper supervisor holds the new root for restarts", "dir", dir)
	return nil
}

// renewed keeps a renewed certificate chain for the next child.
func (s *Supervisor) renewed(chain [][]byte) {
	certs, err := parseDERs(chain)
	if err != nil {
		s.Log.Warn("renewed certificate from the keeper not kept", "err", err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.h.Tunnel == nil {
		return
	}
	t := *s.h.Tunnel
	t.Certs = chain
	s.h.Tunnel = &t
	s.Log.Info("keeper supervisor: renewed certificate kept for a restart", "serial", certs[0].SerialNumber.Text(16))
}

// exitReason says how a child ended: a signal, or its exit status and
// the Go crash it printed.
func exitReason(st *os.ProcessState, crash string) string {
	ws, ok := st.Sys().(syscall.WaitStatus)
	var why string
	switch {
	case !ok:
		why = st.String()
	case ws.Signaled():
		why = "killed by " + unix.SignalName(ws.Signal())
	default:
		why = fmt.Sprintf("exit status %d", ws.ExitStatus())
	}
	if crash != "" {
		why += ": " + crash
	}
	return why
}

// reCrash is the first line Go's runtime prints when it ends a program:
// a panic, a fatal error (a concurrent map write), or a signal (SIGABRT,
// SIGSEGV).
var reCrash = regexp.MustCompile(`^(panic: |fatal error: |SIG[A-Z0-9]+: )`)

// crashLine passes a child's stderr on and keeps the first crash line.
type crashLine struct {
	w     io.Writer
	mu    sync.Mutex
	line  []byte
	crash string
}

func (c *crashLine) Write(p []byte) (int, error) {
	c.w.Write(p) // the console; its errors are not the child's
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, b := range p {
		if b != '\n' {
			if len(c.line) < 200 {
				c.line = append(c.line, b)
			}
			continue
		}
		if c.crash == "" && reCrash.Match(c.line) {
			c.crash = oneLine(string(c.line))
		}
		c.line = c.line[:0]
	}
	return len(p), nil
}

func (c *crashLine) first() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.crash
}
