package kmod

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// finitModule loads the module file at path. EEXIST (a module of that name
// is loaded already) is success with already set.
// A compressed module is decompressed here and loaded with init_module(2).
func finitModule(path string) (already bool, err error) {
	if _, ok := compressedExt(path); ok {
		img, err := readModuleImage(path)
		if err != nil {
			return false, err
		}
		return moduleErr("init_module", path, unix.InitModule(img, ""))
	}
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	return moduleErr("finit_module", path, unix.FinitModule(int(f.Fd()), "", 0))
}

func moduleErr(call, path string, err error) (already bool, _ error) {
	var errno unix.Errno
	switch {
	case err == nil:
		return false, nil
	case errors.Is(err, unix.EEXIST):
		return true, nil
	case errors.As(err, &errno):
		return false, fmt.Errorf("%s(%q) = %s: %w", call, path, unix.ErrnoName(errno), err)
	default:
		return false, fmt.Errorf("%s(%q): %w", call, path, err)
	}
}

// moduleLive reports whether the kernel has the module loaded and
// initialised (/sys/module/NAME/initstate is "live"; built-in modules have
// no initstate and are left to finit_module's answer).
func moduleLive(name string) bool {
	b, err := os.ReadFile("/sys/module/" + NormalizeName(name) + "/initstate")
	return err == nil && strings.TrimSpace(string(b)) == "live"
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
