package disks

import (
	"errors"
	"fmt"
	"log/slog"

	"golang.org/x/sys/unix"
)

// MarkAllReadOnly marks every candidate block device (see Candidates) of
// /sys/block read-only through its node in /dev, and returns the names it
// marked. It relies on devtmpfs at /dev, as ferry's initramfs mounts it;
// a device without a node, or whose node has another device number, is
// reported in the error and left alone. A device that cannot be opened for
// want of a medium (an empty CD drive) is skipped with a log line.
// It never opens anything for writing.
func MarkAllReadOnly(log *slog.Logger) ([]string, error) {
	return markAll("/sys/block", "/dev", log)
}

// markAll is MarkAllReadOnly over a given sysfs block directory and device
// directory, so that tests can point it at a fake sysfs and a loop device
// instead of the host's disks.
func markAll(sysBlock, devDir string, log *slog.Logger) ([]string, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	devs, err := Candidates(sysBlock)
	if err != nil {
		return nil, err
	}
	var marked []string
	var errs []error
	for _, d := range devs {
		node := d.Node(devDir)
		if err := checkNode(node, d.Dev); err != nil {
			errs = append(errs, err)
			continue
		}
		err := SetReadOnly(node)
		switch {
		case errors.Is(err, unix.ENOMEDIUM) || errors.Is(err, unix.ENXIO):
			log.Info("disks: skipped, no medium", "device", d.Name, "err", err)
		case err != nil:
			errs = append(errs, err)
		default:
			log.Info("disks: read-only", "device", d.Name, "dev", d.Dev)
			marked = append(marked, d.Name)
		}
	}
	return marked, errors.Join(errs...)
}

// checkNode makes sure node is the block device "MAJOR:MINOR" that sysfs
// names, so that a stale or forged /dev entry is never trusted.
func checkNode(node, dev string) error {
	var st unix.Stat_t
	if err := unix.Stat(node, &st); err != nil {
		return fmt.Errorf("stat(%q) = %w (device %s; is devtmpfs mounted on /dev?)", node, err, dev)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return fmt.Errorf("%s: not a block device (mode %#o), want device %s", node, st.Mode, dev)
	}
	if got := fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev)); got != dev {
		return fmt.Errorf("%s: device %s, sysfs says %s", node, got, dev)
	}
	return nil
}

// SetReadOnly opens the block device node read-only, sets the kernel's
// read-only flag with BLKROSET and checks it with BLKROGET.
func SetReadOnly(node string) error {
	return setRO(node, 1)
}

// ClearReadOnly undoes SetReadOnly (for tests and lab tooling; ferry itself
// never calls it).
func ClearReadOnly(node string) error {
	return setRO(node, 0)
}

func setRO(node string, ro int) error {
	fd, err := unix.Open(node, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open(%q, O_RDONLY|O_NONBLOCK) = %w", node, err)
	}
	defer unix.Close(fd)
	if err := unix.IoctlSetPointerInt(fd, unix.BLKROSET, ro); err != nil {
		return fmt.Errorf("ioctl(%q, BLKROSET, %d) = %w", node, ro, err)
	}
	got, err := ReadOnlyFd(fd)
	if err != nil {
		return fmt.Errorf("%s: %w", node, err)
	}
	if got != (ro == 1) {
		return fmt.Errorf("ioctl(%q, BLKROGET) = %v after BLKROSET %d", node, got, ro)
	}
	return nil
}

// ReadOnly reports the kernel's read-only flag of a block device node.
func ReadOnly(node string) (bool, error) {
	fd, err := unix.Open(node, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, fmt.Errorf("open(%q, O_RDONLY|O_NONBLOCK) = %w", node, err)
	}
	defer unix.Close(fd)
	return ReadOnlyFd(fd)
}

// ReadOnlyFd is ReadOnly on an open descriptor.
func ReadOnlyFd(fd int) (bool, error) {
	v, err := unix.IoctlGetInt(fd, unix.BLKROGET)
	if err != nil {
		return false, fmt.Errorf("ioctl(%d, BLKROGET) = %w", fd, err)
	}
	return v != 0, nil
}
