package keeper

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// MountBase mounts proc, sysfs and devtmpfs at /proc, /sys and /dev of
// the calling process's root where they are missing: the supervisor's
// root, after switch_root, is what is left of the initramfs (the mounts
// moved into the new root), and a restarted keeper starts there
// (supervisor.go). Mounts that are there already are left alone.
func MountBase() error {
	var errs []error
	for _, m := range []struct {
		dir, fstype, probe string
		flags              uintptr
	}{
		{"/proc", "proc", "/proc/self/exe", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
		{"/sys", "sysfs", "/sys/block", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
		{"/dev", "devtmpfs", "/dev/null", unix.MS_NOSUID},
	} {
		if _, err := os.Lstat(m.probe); err == nil {
			continue
		}
		if err := os.MkdirAll(m.dir, 0o755); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := unix.Mount(m.fstype, m.dir, m.fstype, m.flags, ""); err != nil && !errors.Is(err, unix.EBUSY) {
			errs = append(errs, fmt.Errorf("mount %s on %s: %w", m.fstype, m.dir, err))
		}
	}
	return errors.Join(errs...)
}

// moveInto makes the directory root (an O_PATH descriptor) the whole
// process's root and working directory.
func moveInto(root *os.File) error {
	if err := unix.Fchdir(int(root.Fd())); err != nil {
		return fmt.Errorf("fchdir(%s) = %w", root.Name(), err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("chroot(%s) = %w", root.Name(), err)
	}
	return unix.Chdir("/")
}

func openRootDir(dir string) (*os.File, error) {
	return os.OpenFile(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
}
