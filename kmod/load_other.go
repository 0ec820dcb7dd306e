//go:build !linux

package kmod

import "errors"

func finitModule(path string) (bool, error) {
	return false, errors.ErrUnsupported
}

// Release is only known on Linux.
func Release() (string, error) { return "", errors.ErrUnsupported }

func moduleLive(string) bool { return false }
