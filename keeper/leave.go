package keeper

import (
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"
)

// When the tunnel may go. The keeper's IKE DELETE tells the gateway at
// once that the server has left, so the borrower's return does not wait
// for dead-peer detection. But the NFS root travels through the tunnel:
// a DELETE while the root still has dirty pages, or while a shutdown
// still writes to it, hangs the final sync on a hard mount and the
// machine never powers off. So the DELETE goes only when both hold:
//
//   - the system is going down: PID 1 runs a shutdown program
//     (systemd-shutdown, which spares "@" processes and so never sends
//     the keeper SIGTERM), or the keeper itself got SIGTERM (busybox,
//     sysvinit). The borrower's shutdown request alone is not enough: the
//     init it signalled may still read the root after remounting it
//     read-only (the lab's root-init.sh copies busybox to /dev then, and
//     ends the keeper only after).
//   - no network file system the keeper sees is writable any more: each
//     nfs/nfs4 superblock is read-only, which the kernel reaches only
//     after syncing it (reconfigure_super calls sync_filesystem), and a
//     root that is not a network file system never needed the tunnel.
//
// Anything short of that (a mount table that cannot be read, a root that
// stays writable) keeps the tunnel: the gateway then learns by DPD.

// networkFS are the file system types whose I/O can run through the tunnel.
var networkFS = map[string]bool{"nfs": true, "nfs4": true}

// shutdownPrograms are what PID 1 execs once it is only shutting down.
// The kernel's comm is the first 15 bytes of the executable's name.
var shutdownPrograms = []string{"systemd-shutdown"}

// NetworkFSReleased reports whether no network file system in mounts can
// still be written: each is read-only at its superblock. why names the
// first writable one, or says what was seen.
func NetworkFSReleased(mounts []Mount) (released bool, why string) {
	n := 0
	for _, m := range mounts {
		if !networkFS[m.FSType] {
			continue
		}
		if !m.SuperReadOnly {
			return false, fmt.Sprintf("%s (%s %s) is still writable", m.MountPoint, m.FSType, m.Source)
		}
		n++
	}
	if n == 0 {
		return true, "no network file system mounted"
	}
	return true, fmt.Sprintf("%d network file system(s) read-only", n)
}

// InitShuttingDown reports whether the process whose /proc directory is
// proc runs a shutdown program, by its exe link or, where that cannot be
// read, its comm. It names the program.
func InitShuttingDown(proc string) (string, bool) {
	if exe, err := os.Readlink(proc + "/exe"); err == nil {
		base := path.Base(strings.TrimSuffix(exe, " (deleted)"))
		for _, p := range shutdownPrograms {
			if base == p {
				return p, true
			}
		}
		return base, false
	}
	b, err := os.ReadFile(proc + "/comm")
	if err != nil {
		return "", false
	}
	comm := strings.TrimSpace(string(b))
	for _, p := range shutdownPrograms {
		if comm != "" && comm == p[:min(len(p), 15)] {
			return p, true
		}
	}
	return comm, false
}

// leaveDue says whether the tunnel may be deleted now, and why (or why
// not). termed is true once the keeper got SIGTERM.
func (k *Keeper) leaveDue(termed bool) (bool, string) {
	var going string
	switch prog, down := InitShuttingDown(k.proc1()); {
	case down:
		going = "init is " + prog
	case termed:
		going = "the keeper got SIGTERM"
	default:
		return false, "the system is not shutting down"
	}
	ok, why := k.networkFSReleased()
	if !ok {
		return false, going + ", but " + why
	}
	return true, going + " and " + why
}

// networkFSReleased is NetworkFSReleased of the keeper's mount table now;
// a table that cannot be read counts as not released.
func (k *Keeper) networkFSReleased() (bool, string) {
	f, err := os.Open(k.opt.Mountinfo)
	if err != nil {
		return false, "the mount table cannot be read: " + err.Error()
	}
	defer f.Close()
	mounts, err := Mounts(f)
	if err != nil {
		return false, err.Error()
	}
	return NetworkFSReleased(mounts)
}

func (k *Keeper) proc1() string {
	pid := k.opt.PowerOff.InitPID
	if pid == 0 {
		pid = 1
	}
	return k.opt.Proc + "/" + strconv.Itoa(pid)
}
