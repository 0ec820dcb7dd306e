package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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
	if err := nfsClientID("/sys", a.trace); err != nil {
		return err
	}
	return nfsroot.Mount(ctx, spec, NewRoot, a.log)
}

// nfsClientID gives this server's NFSv4 client its own identity, the
// trace (lease and server), unless the command line set one
// (nfs.nfs4_unique_id=). Without it the client owner is built from the
// host name, the same on every lent server booting one image B: the NFS
// server then takes the servers of a lease for one client, and each
// one's session state ends another's (a second mount fails with EIO).
func nfsClientID(sys, trace string) error {
	p := filepath.Join(sys, "module", "nfs", "parameters", "nfs4_unique_id")
	cur, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // NFS built into the kernel without the parameter, or no NFS: Mount says which
	}
	if err != nil {
		return fmt.Errorf("nfs client id: %w", err)
	}
	if strings.TrimSpace(string(cur)) != "" || trace == "" {
		return nil
	}
	if err := os.WriteFile(p, []byte(trace), 0); err != nil {
		return fmt.Errorf("nfs client id %s: %w", p, err)
	}
	return nil
}

// placeState puts ferry's state directory at the same path inside the new
// root, so the keeper finds its files where they were in the initramfs.
// Managed, the keeper runs already (tunnel-b started it from the
// initramfs; the kernel keeps its binary's pages after switch_root
// deletes the file) and nothing in the root execs /ferry/bin/ferry: the
// 20 MB binary stays out (0.2 s under TCG), and the root's one copy is
// the shutdown hand-off's (/run/initramfs/shutdown). In lab mode
// startKeeper execs it inside the root.
func (a *Agent) placeState(ctx context.Context) error {
	mode, err := nfsroot.ParseMode(a.settings.Root.State)
	if err != nil {
		return err
	}
	var skip []string
	if a.lease != nil {
		skip = append(skip, "bin")
	}
	return nfsroot.PlaceState(NewRoot, StateDir, mode, skip...)
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
	if err := nfsroot.SpareKeeper("/run", cmd.Process.Pid); err != nil {
		a.log.Warn("keeper not spared from a sysvinit root's sendsigs: it may be killed before the root is read-only", "err", err)
	}
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
		Gateway: cfg.Gateway, Server: net.ParseIP(a.settings.Root.Server)}, nfsroot.InitIsSystemd(NewRoot, a.settings.Root.Init))
	if err != nil {
		return err
	}
	if a.shutdownCopy == nil {
		return nfsroot.ShutdownHandOff("/run", BinPath)
	}
	return a.shutdownCopy.wait(context.Background())
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
	a.disarmPanicReboot()
	// The root's init replaces this process: the last reports go now.
	a.rep.drain()
	a.log.Info("switching root", "init", init, "root", a.settings.Root.Server+":"+a.settings.Root.Path, "trace", a.trace)
	err = nfsroot.SwitchRoot(NewRoot, init, nil)
	a.con.printf("ferry: switch_root failed after the checks: %s", oneLine(err.Error()))
	return err
}
