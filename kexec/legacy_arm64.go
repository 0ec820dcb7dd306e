//go:build linux && arm64

package kexec

import (
	"errors"
	"os"

	"github.com/u-root/u-root/pkg/boot/linux"
)

// loadLegacy is kexec_load through u-root's arm64 Image loader.
func loadLegacy(kernel, initrd *os.File, cmdline string) error {
	return linux.KexecLoad(kernel, initrd, cmdline, nil, nil)
}

// legacyFirst: on arm64 kexec_file_load always goes first.
func legacyFirst() error { return errors.New("arm64: kexec_file_load goes first") }

// loadParts: the in-memory initrd is for the x86-64 bzImage path only.
func loadParts(kernel *os.File, parts [][]byte, cmdline string) error {
	return errors.New("arm64: no kexec_load of an initrd in parts")
}
