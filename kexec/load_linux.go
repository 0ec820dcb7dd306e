//go:build linux && (amd64 || arm64)

package kexec

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	ukexec "github.com/u-root/u-root/pkg/boot/kexec"
	"github.com/u-root/u-root/pkg/boot/linux"
	"golang.org/x/sys/unix"
)

// syscalls are the two ways into the kernel; tests replace them.
type syscalls struct {
	fileLoad   func(kernelFd, initrdFd int, cmdline string, flags int) error
	legacyLoad func(kernel, initrd *os.File, cmdline string) error
	lockdown   func() (string, error) // LockdownMode
}

func realSyscalls() syscalls {
	return syscalls{
		fileLoad: unix.KexecFileLoad,
		legacyLoad: func(kernel, initrd *os.File, cmdline string) error {
			return linux.KexecLoad(kernel, initrd, cmdline, nil, nil)
		},
		lockdown: LockdownMode,
	}
}

// Load loads kernel (an x86 bzImage) and initrd (may be "") with cmdline as
// the kernel to run at the next Exec, and says which syscall did it.
//
// It tries kexec_file_load first and falls back to kexec_load only for
// errors that path can fix (see fallbackFixes), never for EPERM: under
// lockdown both fail. opt.ForceFile disables the fallback; opt.ForceLegacy
// skips kexec_file_load.
//
// Files are opened read-only. Like execve, kexec_file_load fails with
// ETXTBSY while any process holds the kernel or initrd open for writing:
// close (and sync) a freshly downloaded image before loading it.
func Load(kernel, initrd, cmdline string, opt Options) (Method, error) {
	return load(kernel, initrd, cmdline, opt, realSyscalls())
}

func load(kernel, initrd, cmdline string, opt Options, sc syscalls) (Method, error) {
	if opt.ForceFile && opt.ForceLegacy {
		return Method{}, errors.New("kexec: kexec_file_load only and kexec_load only were both asked for")
	}
	kf, err := os.Open(kernel)
	if err != nil {
		return Method{}, fmt.Errorf("kexec: %w", err)
	}
	defer kf.Close()
	if runtime.GOARCH == "amd64" {
		bz, err := ParseBzImage(kf)
		if err != nil {
			return Method{}, fmt.Errorf("%s: %w", kernel, err)
		}
		if err := bz.CheckCmdline(cmdline); err != nil {
			return Method{}, fmt.Errorf("%s: %w", kernel, err)
		}
	}
	var rf *os.File
	if initrd != "" {
		if rf, err = os.Open(initrd); err != nil {
			return Method{}, fmt.Errorf("kexec: %w", err)
		}
		defer rf.Close()
	}

	var fallback error
	if !opt.ForceLegacy {
		initrdFd, flags := -1, unix.KEXEC_FILE_NO_INITRAMFS
		if rf != nil {
			initrdFd, flags = int(rf.Fd()), 0
		}
		err := sc.fileLoad(int(kf.Fd()), initrdFd, cmdline, flags)
		if err == nil {
			return Method{Syscall: FileLoad, Forced: opt.ForceFile}, nil
		}
		serr := &SyscallError{Call: FileLoad, Kernel: kernel, Initrd: initrd, Cmdline: cmdline, Errno: errnoOf(err), Err: err}
		if opt.ForceFile || !fallbackFixes(serr.Errno) {
			return Method{}, sc.refusal(serr)
		}
		fallback = serr
		if _, err := kf.Seek(0, 0); err != nil {
			return Method{}, fmt.Errorf("kexec: rewinding %s: %w", kernel, err)
		}
	}

	err = sc.legacyLoad(kf, rf, cmdline)
	if err == nil {
		return Method{Syscall: LegacyLoad, Fallback: fallback, Forced: opt.ForceLegacy}, nil
	}
	serr := &SyscallError{Call: LegacyLoad, Kernel: kernel, Initrd: initrd, Cmdline: cmdline, Err: err}
	var ek ukexec.ErrKexec
	if errors.As(err, &ek) {
		serr.Errno = unix.Errno(ek.Errno)
	}
	if fallback != nil {
		return Method{}, sc.refusal(fmt.Errorf("%w (after %v)", serr, fallback))
	}
	return Method{}, sc.refusal(serr)
}
