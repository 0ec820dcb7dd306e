package agent

import (
	"errors"
	"fmt"
	"os"
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
