// Package agent is ferry's early-boot agent: PID 1 of image A, and (through
// rdinit=) PID 1 of image B. The transfer reads top to bottom in this file:
// each phase of the seed's figure 2 is one named method.
//
// A runs in one of two modes, chosen by its kernel command line. Managed
// (ferry.lender=, set by the lender's iPXE script): enroll with the lender
// for a one-time certificate, open the IPsec tunnel to the borrower's
// gateway, fetch image B through it, and report every phase to the lender.
// Lab (ferry.source=): read the transfer settings from a plain URL, no
// tunnel, no reports. B follows the mode A carried in its state.
package agent

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"time"

	"ferry/disks"
	"ferry/ipsec/ike"
	"ferry/keeper"
)

// Paths of the state that image A appends to initrd(B). Everything ferry
// adds lives under StateDir so none of B's own files is ever replaced.
const (
	StateDir  = "/ferry"
	BinPath   = StateDir + "/bin/ferry"
	InitPath  = StateDir + "/bin/init"
	StatePath = StateDir + "/state/settings.json"
	// TunnelDir holds the one-time identity and tunnel settings (managed
	// mode): vpn.json, cert.pem, ca.pem and key.pem (0600), in RAM only.
	TunnelDir = StateDir + "/state/tunnel"
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
	ipConfig    string      // the static ip= the network phase applied
	dhcp        *DHCPRecord // A's DHCP lease, when it used DHCP
	kernelPath  string
	initrdPath  string
	bundlePath  string // the borrower's module bundle, when the image has one
	linkName    string // the NIC the network phase brought up
	patchedPath string
	inPlace     *inPlaceInitrd // initrd(B) patched in memory, for kexec_load

	// Managed mode: the lease, the one-time identity and its tunnel.
	rep      *reporter
	mac      string
	lease    *Lease
	ident    *ike.InitiatorState // gateway, key, certificate, borrower CA
	imageTLS *tls.Config         // image B's server, verified by the borrower CA
	// imageFetch is wait-root's client, kept for fetch-b: one TLS
	// handshake through the tunnel instead of two.
	imageFetch *fetcher
	tunnel     *keeper.Tunnel // A's in-process tunnel
	keeperCtl  net.Conn       // B: control channel to the keeper
	diskWatch  *disks.Watcher // marks disks that appear after disks-ro
	disksRO    []string       // what disks-ro marked
	phaseBytes int64          // bytes the running phase moved, for its report

	// B's work beside the phases: the NFS client's module loads
	// (modules_b.go) and the shutdown hand-off's copy of ferry.
	nfsLoad, shutdownCopy *background
	// A's work beside the phases: ESP's module loads (modules_a.go),
	// which tunnel-a and the jump wait for.
	espLoad *background
	// panicRestore puts back the kernel's panic timeout before the
	// root's init runs (ArmPanicReboot).
	panicRestore func()
}

// step is one phase of the chain.
type step struct {
	name string
	fn   func(context.Context) error
}

// New makes an agent that prints its phases to w.
func New(w io.Writer, log *slog.Logger, cmdline string) (*Agent, error) {
	cmd, err := ParseCmdline(cmdline)
	if err != nil {
		return nil, err
	}
	return &Agent{con: &console{w: w}, log: log, cmd: cmd, start: time.Now(), rep: &reporter{log: log}}, nil
}

// Run decides which image it is in and runs that image's chain. It returns
// only on failure: success ends in kexec (A) or exec of B's init (B).
func (a *Agent) Run(ctx context.Context) error {
	if _, err := os.Stat(StatePath); err == nil {
		return a.RunB(ctx)
	}
	return a.RunA(ctx)
}

// managed reports whether A was booted by a lender manager.
func (a *Agent) managed() bool {
	_, ok := a.cmd.Get("ferry.lender")
	return ok
}

// RunA is image A: the lender's generic in-RAM image.
func (a *Agent) RunA(ctx context.Context) error {
	a.booted(ctx, "boot-a")
	if err := a.runPhases(ctx, a.stepsA(a.managed())); err != nil {
		return err
	}
	// Nothing may still be loading at the jump (lab mode has no tunnel-a
	// to wait for ESP's modules).
	if err := a.waitModules(ctx); err != nil {
		return err
	}
	// Nothing can be reported after the jump: say so first.
	a.armed(ctx)
	a.stopDiskWatch()
	return a.jump()
}

// stepsA is A's phases after boot-a, managed (a lender booted it) or in
// lab mode. It only names methods, so Phases calls it on a nil Agent.
func (a *Agent) stepsA(managed bool) []step {
	steps := []step{
		{"modules", a.loadModules},
		{"disks-ro", a.disksReadOnly},
		{"network", a.networkUp},
	}
	if managed {
		steps = append(steps,
			step{"enroll", a.enroll},
			step{"tunnel-a", a.tunnelA},
			step{"wait-root", a.waitRoot})
	} else {
		steps = append(steps, step{"settings", a.fetchSettings})
	}
	return append(steps,
		step{"fetch-b", a.fetchB},
		step{"patch-b", a.patchB},
		step{"kexec", a.kexecLoad})
}

// RunB is image B's initramfs, with ferry as rdinit= from the appended
// segment; B's own /init stays untouched.
func (a *Agent) RunB(ctx context.Context) error {
	a.booted(ctx, "boot-b")
	if err := a.runPhases(ctx, []step{{"state", a.readState}}); err != nil {
		return err
	}
	if err := a.runPhases(ctx, a.stepsB(a.lease != nil)); err != nil {
		return err
	}
	return a.switchRoot(ctx)
}

// stepsB is B's phases between state and switch-root: with a lease
// (managed) the keeper opens the tunnel before the root is mounted
// through it, and moves into that root once it is there.
func (a *Agent) stepsB(managed bool) []step {
	steps := []step{
		{"modules", a.loadModules},
		{"disks-ro", a.disksReadOnly},
		{"network", a.networkUp},
	}
	if managed {
		return append(steps,
			step{"tunnel-b", a.tunnelB},
			step{"nfs-client", a.nfsClientReady},
			step{"mount-root", a.mountRoot},
			step{"place-state", a.placeState},
			step{"keeper", a.keeperIntoRoot})
	}
	return append(steps,
		step{"nfs-client", a.nfsClientReady},
		step{"mount-root", a.mountRoot},
		step{"place-state", a.placeState},
		step{"keeper", a.startKeeper})
}

// Phases is the order of the phases image "A" or "B" runs, each printed
// as `ferry: phase NAME ok in D` (docs/CONTRACT.md), managed or in lab
// mode: what the lab checks a console against, from the code that runs
// them rather than a copy. Any other image has none.
func Phases(image string, managed bool) []string {
	var a *Agent
	var names []string
	add := func(steps []step) {
		for _, s := range steps {
			names = append(names, s.name)
		}
	}
	switch image {
	case "A":
		names = []string{"boot-a"}
		add(a.stepsA(managed))
	case "B":
		names = []string{"boot-b", "state"}
		add(a.stepsB(managed))
		names = append(names, "switch-root")
	}
	return names
}

func (a *Agent) runPhases(ctx context.Context, steps []step) error {
	for _, s := range steps {
		if err := a.phase(ctx, s.name, s.fn); err != nil {
			return err
		}
	}
	return nil
}

// phase runs one phase: its console line, then its report.
func (a *Agent) phase(ctx context.Context, name string, fn func(context.Context) error) error {
	a.phaseBytes = 0
	start := time.Now()
	err := a.con.phase(name, func() error { return fn(ctx) })
	a.rep.add(ctx, name, start, time.Now(), a.phaseBytes, err)
	if err != nil {
		// The failure handling (a reboot, by default) comes next.
		a.rep.drain()
	}
	return err
}

// booted records the kernel's own boot, which ended before ferry started.
func (a *Agent) booted(ctx context.Context, name string) {
	up := uptime()
	a.con.done(name, up)
	a.rep.add(ctx, name, a.start.Add(-up), a.start, 0, nil)
}
