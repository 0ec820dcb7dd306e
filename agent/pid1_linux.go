package agent

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// EarlyMounts gives PID 1 the file systems it needs: /proc, /sys, /dev
// (devtmpfs) and /run as a tmpfs, which switch_root later moves into the
// new root as systemd's initrd interface expects. Already-mounted ones
// (EBUSY) are fine: B's kernel may have mounted devtmpfs itself.
func EarlyMounts() error {
	for _, m := range []struct{ fstype, target, data string }{
		{"proc", "/proc", ""},
		{"sysfs", "/sys", ""},
		{"devtmpfs", "/dev", "mode=0755"},
		{"tmpfs", "/run", "mode=0755"},
	} {
		if err := os.MkdirAll(m.target, 0o755); err != nil {
			return err
		}
		err := unix.Mount(m.fstype, m.target, m.fstype, unix.MS_NOSUID, m.data)
		if err != nil && !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("mount(%q, %q, %q) = %w", m.fstype, m.target, m.fstype, err)
		}
	}
	return nil
}

// OpenConsole points stdin, stdout and stderr at /dev/console. The kernel
// does this only when the initramfs has a /dev/console node, which initrd(B)
// made by someone else may lack.
func OpenConsole() (*os.File, error) {
	f, err := os.OpenFile("/dev/console", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, err
	}
	for fd := 0; fd <= 2; fd++ {
		if err := unix.Dup2(int(f.Fd()), fd); err != nil {
			return nil, fmt.Errorf("dup2(console, %d) = %w", fd, err)
		}
	}
	return f, nil
}

// Halt ends PID 1 after a failure in the way the command line asks:
// ferry.on_failure=reboot (default: the lender's PXE gets another go),
// poweroff, or hold (stay up for a person at the console). PID 1 must
// never simply exit: the kernel would panic.
func Halt(how string) {
	unix.Sync()
	switch how {
	case "hold":
		for {
			time.Sleep(time.Hour)
		}
	case "poweroff":
		unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	default:
		time.Sleep(5 * time.Second)
		unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
	}
	for {
		time.Sleep(time.Hour)
	}
}

// OnFailure is the ferry.on_failure= setting of this boot.
func (a *Agent) OnFailure() string {
	v, _ := a.cmd.Get("ferry.on_failure")
	return v
}

// panicRebootAfter is how long a panicked kernel waits before it reboots
// when ferry.on_failure=reboot: long enough to read the console.
const panicRebootAfter = 10 * time.Second

// ArmPanicReboot makes a kernel panic reboot the machine, as a failure
// does (Halt), while ferry is PID 1 and on_failure is reboot. PID 1
// returning is handled, but a Go runtime fatal error (a data race on a
// map, running out of memory) cannot be recovered: the process dies, the
// kernel panics, and its default is to hang there for ever, a lent
// server nobody reaches until an operator power-cycles it. A timeout
// the command line set (panic=N) is left alone. procPanic is
// /proc/sys/kernel/panic. switch-root puts the old value back: after it
// the machine is the borrower's OS's, which sets its own.
func (a *Agent) ArmPanicReboot(procPanic string) {
	how := a.OnFailure()
	if how != "" && how != "reboot" {
		return
	}
	cur, err := os.ReadFile(procPanic)
	if err != nil {
		a.log.Warn("kernel panic timeout unreadable: a crash of PID 1 may hang the machine", "err", err)
		return
	}
	old := strings.TrimSpace(string(cur))
	if old != "0" {
		return
	}
	secs := strconv.Itoa(int(panicRebootAfter / time.Second))
	if err := os.WriteFile(procPanic, []byte(secs), 0); err != nil {
		a.log.Warn("kernel panic timeout not set: a crash of PID 1 may hang the machine", "err", err)
		return
	}
	a.panicRestore = func() {
		if err := os.WriteFile(procPanic, []byte(old), 0); err != nil {
			a.log.Warn("kernel panic timeout not restored for the root's init", "want", old, "err", err)
		}
	}
}

// disarmPanicReboot puts back the panic timeout ArmPanicReboot changed.
func (a *Agent) disarmPanicReboot() {
	if a.panicRestore != nil {
		a.panicRestore()
		a.panicRestore = nil
	}
}
