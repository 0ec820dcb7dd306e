//go:build !linux

package kmod

import "errors"

func finitModule(path string) (bool, error) {
	return false, errors.ErrUnsupported
}

// KernelRelease is only known on Linux.
func KernelRelease() (string, error) { return "", errors.ErrUnsupported }
