package nfsroot

import (
	"fmt"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// mountKey identifies the mount a file lives on: the device number alone
// misses bind mounts of the same file system, so the mount id (statx
// STATX_MNT_ID, Linux 5.8+) is compared too when the kernel gives it.
type mountKey struct {
	dev   uint64
	mntID uint64 // 0 when the kernel does not report it
}

// statxMount returns the mount and file type of name in dirfd, not
// following a final symlink; an empty name means dirfd itself.
func statxMount(dirfd int, name string) (mountKey, uint16, error) {
	flags := unix.AT_SYMLINK_NOFOLLOW
	if name == "" {
		flags |= unix.AT_EMPTY_PATH
	}
	var sx unix.Statx_t
	if err := unix.Statx(dirfd, name, flags, unix.STATX_TYPE|unix.STATX_MNT_ID, &sx); err != nil {
		return mountKey{}, 0, fmt.Errorf("statx(%d, %q, %#x, STATX_TYPE|STATX_MNT_ID) = %w", dirfd, name, flags, err)
	}
	k := mountKey{dev: unix.Mkdev(sx.Dev_major, sx.Dev_minor)}
	if sx.Mask&unix.STATX_MNT_ID != 0 {
		k.mntID = sx.Mnt_id
	}
	return k, sx.Mode, nil
}

func mountOf(p string) (mountKey, error) {
	k, _, err := statxMount(unix.AT_FDCWD, p)
	return k, err
}

// isMountPoint reports whether p is the root of a mount: its device or
// mount id differs from its parent's. "/" always is.
func isMountPoint(p string) (bool, error) {
	p = filepath.Clean(p)
	if p == "/" {
		return true, nil
	}
	k, err := mountOf(p)
	if err != nil {
		return false, err
	}
	parent, err := mountOf(filepath.Dir(p))
	if err != nil {
		return false, err
	}
	return k != parent, nil
}
