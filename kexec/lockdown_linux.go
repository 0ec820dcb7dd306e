//go:build linux && (amd64 || arm64)

package kexec

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// LockdownMode reads the running kernel's lockdown mode. Image A's init
// mounts no securityfs, so when the file is missing it mounts securityfs
// on its usual directory once and reads again; a kernel without the
// lockdown LSM has no file at all, which is an error here (mode unknown).
func LockdownMode() (string, error) {
	b, err := os.ReadFile(LockdownFile)
	if errors.Is(err, fs.ErrNotExist) {
		dir := filepath.Dir(LockdownFile)
		if merr := unix.Mount("securityfs", dir, "securityfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); merr == nil || errors.Is(merr, unix.EBUSY) {
			b, err = os.ReadFile(LockdownFile)
		}
	}
	if err != nil {
		return "", err
	}
	return ParseLockdown(string(b))
}
