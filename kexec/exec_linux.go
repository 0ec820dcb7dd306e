//go:build linux && (amd64 || arm64)

package kexec

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// loadedFile is where the kernel says whether a kexec image is loaded.
const loadedFile = "/sys/kernel/kexec_loaded"

// Loaded reports whether a kernel is loaded for Exec.
func Loaded() (bool, error) {
	b, err := os.ReadFile(loadedFile)
	if err != nil {
		return false, fmt.Errorf("kexec: %w (kernel without KEXEC?)", err)
	}
	return strings.TrimSpace(string(b)) == "1", nil
}

// Unload forgets the loaded kernel: kexec_file_load with KEXEC_FILE_UNLOAD,
// or, for a kernel without KEXEC_FILE or with opt.ForceLegacy, kexec_load
// with no segments. Either clears an image loaded by the other.
func Unload(opt Options) error {
	if !opt.ForceLegacy {
		err := unix.KexecFileLoad(-1, -1, "", unix.KEXEC_FILE_UNLOAD)
		if err == nil {
			return nil
		}
		if opt.ForceFile || !errors.Is(err, unix.ENOSYS) {
			return realSyscalls().refusal(fmt.Errorf("kexec_file_load(KEXEC_FILE_UNLOAD) = %s: %w", unix.ErrnoName(errnoOf(err)), err))
		}
	}
	if _, _, errno := unix.Syscall6(unix.SYS_KEXEC_LOAD, 0, 0, 0, 0, 0, 0); errno != 0 {
		return realSyscalls().refusal(fmt.Errorf("kexec_load(entry=0, nr_segments=0) = %s: %w", unix.ErrnoName(errno), errno))
	}
	return nil
}

// Exec syncs file systems and reboots into the loaded kernel. It returns
// only on failure.
func Exec() error {
	loaded, err := Loaded()
	if err != nil {
		return err
	}
	if !loaded {
		return errors.New("kexec: no kernel loaded (load one with kexec -l first)")
	}
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_KEXEC); err != nil {
		return realSyscalls().refusal(fmt.Errorf("reboot(LINUX_REBOOT_CMD_KEXEC) = %s: %w", unix.ErrnoName(errnoOf(err)), err))
	}
	return nil
}
