// Package agent is ferry's early-boot agent: PID 1 of image A, and (through
// rdinit=) PID 1 of image B. The transfer reads top to bottom in this file:
// each phase of the seed's figure 2 is one named method.
package agent

import (
	"context"
	"io"
	"log/slog"
	"net/url"
	"os"
	"time"
)

// Paths of the state that image A appends to initrd(B). Everything ferry
// adds lives under StateDir so none of B's own files is ever replaced.
const (
	StateDir  = "/ferry"
	BinPath   = StateDir + "/bin/ferry"
	InitPath  = StateDir + "/bin/init"
	StatePath = StateDir + "/state/settings.json"
	ModuleDir = StateDir + "/modules"
	// workDir holds image B while A patches it: A's rootfs is RAM.
	workDir = "/run/ferry-b"
	// NewRoot is where B mounts the NFS export before switching to it.
	NewRoot = "/sysroot"
)

// Limits on what A accepts from the network.
const (
	maxKernel = 256 << 20
	maxInitrd = 4 << 30
)

// Agent holds what one boot of the agent knows.
type Agent struct {
	con   *console
	log   *slog.Logger
	cmd   *Cmdline
	trace string
	start time.Time

	// Filled in as the phases run.
	settingsURL *url.URL
	settings    *Settings
	state       *State
	ipConfig    string
	kernelPath  string
	initrdPath  string
	patchedPath string
}

// New makes an agent that prints its phases to w.
func New(w io.Writer, log *slog.Logger, cmdline string) (*Agent, error) {
	cmd, err := ParseCmdline(cmdline)
	if err != nil {
		return nil, err
	}
	return &Agent{con: &console{w: w}, log: log, cmd: cmd, start: time.Now()}, nil
}

// Run decides which image it is in and runs that image's chain. It returns
// only on failure: success ends in kexec (A) or exec of B's init (B).
func (a *Agent) Run(ctx context.Context) error {
	if _, err := os.Stat(StatePath); err == nil {
		return a.RunB(ctx)
	}
	return a.RunA(ctx)
}

// RunA is image A: the lender's generic in-RAM image.
func (a *Agent) RunA(ctx context.Context) error {
	a.con.done("boot-a", uptime())
	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"modules", a.loadModules},
		{"disks-ro", a.disksReadOnly},
		{"network", a.networkUp},
		{"settings", a.fetchSettings},
		{"fetch-b", a.fetchB},
		{"patch-b", a.patchB},
		{"kexec", a.kexecLoad},
	}
	for _, s := range steps {
		if err := a.con.phase(s.name, func() error { return s.fn(ctx) }); err != nil {
			return err
		}
	}
	// Nothing can be reported after the jump: say so first.
	a.con.printf("ferry: kexec armed trace=%s", a.trace)
	return a.jump()
}

// RunB is image B's initramfs, with ferry as rdinit= from the appended
// segment; B's own /init stays untouched.
func (a *Agent) RunB(ctx context.Context) error {
	a.con.done("boot-b", uptime())
	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"state", a.readState},
		{"modules", a.loadModules},
		{"disks-ro", a.disksReadOnly},
		{"network", a.networkUp},
		{"mount-root", a.mountRoot},
		{"place-state", a.placeState},
		{"keeper", a.startKeeper},
	}
	for _, s := range steps {
		if err := a.con.phase(s.name, func() error { return s.fn(ctx) }); err != nil {
			return err
		}
	}
	return a.switchRoot()
}
