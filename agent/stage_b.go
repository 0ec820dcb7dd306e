package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"syscall"

	"ferry/netcfg"
	"ferry/nfsroot"
)

// keeperListen is where the keeper answers status queries.
const keeperListen = ":7070"

// readState reads what A appended to initrd(B).
func (a *Agent) readState(ctx context.Context) error {
	data, err := os.ReadFile(StatePath)
	if err != nil {
		return err
	}
	var st State
	if err := json.Unmarshal(data, &st); err != nil {
		return fmt.Errorf("%s: %w", StatePath, err)
	}
	s := st.Settings
	s.defaults()
	if err := s.validate(); err != nil {
		return fmt.Errorf("%s: %w", StatePath, err)
	}
	st.Settings = s
	a.state, a.settings, a.trace, a.lease = &st, &st.Settings, st.Trace, st.Lease
	if t, ok := a.cmd.Get("ferry.trace"); ok && t != st.Trace {
		return fmt.Errorf("trace %q on the command line differs from %q in %s", t, st.Trace, StatePath)
	}
	return nil
}

// mountRoot mounts the borrower's NFS export that becomes B's root.
func (a *Agent) mountRoot(ctx context.Context) error {
	r := a.settings.Root
	spec := nfsroot.Spec{Server: r.Server, Path: r.Path, Version: r.NFSVersion, Options: r.Options}
	return nfsroot.Mount(ctx, spec, NewRoot, a.log)
}

// placeState puts ferry's state directory at the same path inside the new
// root, so the keeper finds its files where they were in the initramfs.
func (a *Agent) placeState(ctx context.Context) error {
	mode, err := nfsroot.ParseMode(a.settings.Root.State)
	if err != nil {
		return err
	}
	return nfsroot.PlaceState(NewRoot, StateDir, mode)
}

// startKeeper starts the long-lived process that must outlive the switch:
// chrooted into the new root already, named "@ferry" so that systemd spares
// it at shutdown like any root-storage daemon.
func (a *Agent) startKeeper(ctx context.Context) error {
	cmd := exec.Command(BinPath, append([]string{"keeper", "--trace", a.trace, "--listen", keeperListen}, a.keeperDiskArgs()...)...)
	cmd.Args[0] = "@ferry"
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = a.con.w, a.con.w
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: NewRoot, Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start keeper %s in %s: %w", BinPath, NewRoot, err)
	}
	a.log.Info("keeper started", "pid", cmd.Process.Pid)
	// PID 1 is about to exec the borrower's init, which inherits the keeper
	// as its child: nothing here waits for it.
	return cmd.Process.Release()
}

// handOff tells the root's network manager, in /run (moved into the root
// by the switch), which NIC carries the root (nfsroot.HandOff).
func (a *Agent) handOff() error {
	cfg, err := netcfg.ParseIP(a.ipConfig)
	if err != nil {
		return fmt.Errorf("hand-off: ip= %q: %w", a.ipConfig, err)
	}
	mac, err := net.ParseMAC(a.mac)
	if err != nil {
		return fmt.Errorf("hand-off: %w", err)
	}
	name := a.linkName
	if name == "" {
		name = cfg.Device
	}
	err = nfsroot.HandOff("/run", nfsroot.RootLink{Name: name, MAC: mac, Addr: cfg.Client, Mask: cfg.Mask,
		Gateway: cfg.Gateway, Server: net.ParseIP(a.settings.Root.Server)})
	if err != nil {
		return err
	}
	return nfsroot.ShutdownHandOff("/run", BinPath)
}

// switchRoot hands the machine to the borrower's init on the NFS root. The
// phase line (and report) goes out once every check has passed, just
// before the point of no return: nothing can be said after exec succeeds.
func (a *Agent) switchRoot(ctx context.Context) error {
	init := a.settings.Root.Init
	err := a.phase(ctx, "switch-root", func(context.Context) error {
		if err := nfsroot.CheckSwitchRoot(NewRoot, init); err != nil {
			return err
		}
		return a.handOff()
	})
	if err != nil {
		return err
	}
	a.stopDiskWatch()
	a.log.Info("switching root", "init", init, "root", a.settings.Root.Server+":"+a.settings.Root.Path, "trace", a.trace)
	err = nfsroot.SwitchRoot(NewRoot, init, nil)
	a.con.printf("ferry: switch_root failed after the checks: %s", oneLine(err.Error()))
	return err
}
