package kmod

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// finitModule loads the module file at path. EEXIST (a module of that name
// is loaded already) is success with already set.
func finitModule(path string) (already bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	err = unix.FinitModule(int(f.Fd()), "", 0)
	var errno unix.Errno
	switch {
	case err == nil:
		return false, nil
	case errors.Is(err, unix.EEXIST):
		return true, nil
	case errors.As(err, &errno):
		return false, fmt.Errorf("finit_module(%q) = %s: %w", path, unix.ErrnoName(errno), err)
	default:
		return false, fmt.Errorf("finit_module(%q): %w", path, err)
	}
}

// Release returns the running kernel's release (uname -r), which
// names its directory under /lib/modules.
func Release() (string, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", fmt.Errorf("uname: %w", err)
	}
	return unix.ByteSliceToString(u.Release[:]), nil
}
