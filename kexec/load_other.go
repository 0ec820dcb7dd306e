//go:build !linux || !(amd64 || arm64)

package kexec

import (
	"errors"
	"fmt"
	"runtime"
)

func unsupported() error {
	return fmt.Errorf("kexec: not supported on %s/%s: %w", runtime.GOOS, runtime.GOARCH, errors.ErrUnsupported)
}

// Load is only implemented on Linux amd64 and arm64.
func Load(kernel, initrd, cmdline string, opt Options) (Method, error) {
	return Method{}, unsupported()
}

// Unload is only implemented on Linux amd64 and arm64.
func Unload(opt Options) error { return unsupported() }

// Exec is only implemented on Linux amd64 and arm64.
func Exec() error { return unsupported() }

// Loaded is only implemented on Linux amd64 and arm64.
func Loaded() (bool, error) { return false, unsupported() }

// InitrdPartsApply is only implemented on Linux amd64.
func InitrdPartsApply() error { return unsupported() }

// LoadInitrdParts is only implemented on Linux amd64.
func LoadInitrdParts(kernel string, parts [][]byte, cmdline string) (Method, error) {
	return Method{}, unsupported()
}
