package keeper

import (
	"errors"
	"log/slog"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// finalWait bounds the wait for the keepers to delete their tunnels and
// exit (their own bound is leaveGrace, for a root still writable).
const finalWait = leaveGrace + 2*time.Second

// FinalShutdown is /run/initramfs/shutdown's work as PID 1 (final.go):
// SIGTERM to every keeper, a wait until they have exited (at most
// finalWait), sync, then verb. It returns only when not PID 1; as PID 1
// it never returns (the kernel would panic): an unknown verb powers off,
// a failed reboot(2) is retried as power-off, then it sleeps.
func FinalShutdown(verb string, log *slog.Logger) error {
	if os.Getpid() != 1 {
		return errors.New("not PID 1: this is systemd-shutdown's hand-off (/run/initramfs/shutdown), not a command")
	}
	if err := CheckVerb(verb); err != nil {
		log.Error("final shutdown: powering off", "err", err)
		verb = "poweroff"
	}
	// systemd-shutdown leaves network file systems writable (it skips
	// their read-only remount, which could hang without a network); the
	// keeper deletes its tunnel only once they are read-only, hence synced.
	unix.Sync()
	remountNetworkFSReadOnly(log)
	pids := Keepers("/proc", 1)
	for _, pid := range pids {
		unix.Kill(pid, unix.SIGTERM)
	}
	start := time.Now()
	for _, pid := range pids {
		for time.Since(start) < finalWait {
			// Children of PID 1 once systemd-shutdown exec'd us: reap them.
			var ws unix.WaitStatus
			unix.Wait4(-1, &ws, unix.WNOHANG, nil)
			if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err != nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	log.Info("final shutdown: keepers stopped", "keepers", pids, "waited", time.Since(start).Round(time.Millisecond), "verb", verb)
	unix.Sync()
	cmd := map[string]int{"poweroff": unix.LINUX_REBOOT_CMD_POWER_OFF, "reboot": unix.LINUX_REBOOT_CMD_RESTART,
		"halt": unix.LINUX_REBOOT_CMD_HALT, "kexec": unix.LINUX_REBOOT_CMD_KEXEC}[verb]
	err := unix.Reboot(cmd)
	log.Error("final shutdown: reboot(2) failed; powering off", "verb", verb, "err", err)
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	for {
		time.Sleep(time.Hour)
	}
}

// remountNetworkFSReadOnly remounts every nfs/nfs4 mount read-only, the
// deepest first (the old root is at /oldroot here). Nothing but the
// keepers runs any more, so none should be busy; a failure is logged,
// and the keeper then keeps its tunnel (the gateway learns by DPD).
func remountNetworkFSReadOnly(log *slog.Logger) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		log.Warn("final shutdown: mount table", "err", err)
		return
	}
	mounts, err := Mounts(f)
	f.Close()
	if err != nil {
		log.Warn("final shutdown: mount table", "err", err)
		return
	}
	for i := len(mounts) - 1; i >= 0; i-- {
		m := mounts[i]
		if !networkFS[m.FSType] || m.SuperReadOnly {
			continue
		}
		if err := unix.Mount("", m.MountPoint, "", unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
			log.Warn("final shutdown: remount read-only", "mount", m.MountPoint, "fstype", m.FSType, "err", err)
			continue
		}
		log.Info("final shutdown: read-only", "mount", m.MountPoint, "fstype", m.FSType)
	}
}
