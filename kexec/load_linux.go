//go:build linux && (amd64 || arm64)

package kexec

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	ukexec "github.com/u-root/u-root/pkg/boot/kexec"
	"golang.org/x/sys/unix"
)

// syscalls are the two ways into the kernel; tests replace them.
type syscalls struct {
	fileLoad   func(kernelFd, initrdFd int, cmdline string, flags int) error
	legacyLoad func(kernel, initrd *os.File, cmdline string) error
	lockdown   func() (string, error) // LockdownMode
	// legacyFirst says why kexec_load should not be tried first on this
	// machine, or nil (see Load); nil func: never first.
	legacyFirst func() error
}

func realSyscalls() syscalls {
	return syscalls{
		fileLoad:    unix.KexecFileLoad,
		legacyLoad:  loadLegacy,
		lockdown:    LockdownMode,
		legacyFirst: legacyFirst,
	}
}

// Load loads kernel (an x86 bzImage) and initrd (may be "") with cmdline as
// the kernel to run at the next Exec, and says which syscall did it.
//
// On an x86-64 machine that booted without EFI and whose kernel is not
// locked down it tries kexec_load first, with the bzImage as it is
// (bzplan.go), and falls back to kexec_file_load on any failure: the two
// load the same bytes to the same kind of places, but kexec_file_load
// hashes every segment at load and its purgatory hashes them again before
// the jump (under TCG 6 s for image B's 36 MB; a tenth of a second on
// hardware). Elsewhere it tries kexec_file_load first and falls back to
// kexec_load only for errors that path can fix (see fallbackFixes), never
// for EPERM: under lockdown both fail. opt.ForceFile disables the
// fallback; opt.ForceLegacy skips kexec_file_load.
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

	if !opt.ForceFile && !opt.ForceLegacy && sc.legacyFirst != nil && sc.lockdown != nil {
		if mode, err := sc.lockdown(); err == nil && mode == "none" && sc.legacyFirst() == nil {
			err := sc.legacyLoad(kf, rf, cmdline)
			if err == nil {
				return Method{Syscall: LegacyLoad}, nil
			}
			lerr := &SyscallError{Call: LegacyLoad, Kernel: kernel, Initrd: initrd, Cmdline: cmdline, Errno: legacyErrno(err), Err: err}
			if err := rewind(kf, rf); err != nil {
				return Method{}, err
			}
			if err := sc.fileLoad(int(kf.Fd()), fileInitrdFd(rf), cmdline, fileFlags(rf)); err != nil {
				serr := &SyscallError{Call: FileLoad, Kernel: kernel, Initrd: initrd, Cmdline: cmdline, Errno: errnoOf(err), Err: err}
				return Method{}, sc.refusal(fmt.Errorf("%w (after %v)", serr, lerr))
			}
			return Method{Syscall: FileLoad, Fallback: lerr}, nil
		}
	}

	var fallback error
	if !opt.ForceLegacy {
		err := sc.fileLoad(int(kf.Fd()), fileInitrdFd(rf), cmdline, fileFlags(rf))
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
	serr := &SyscallError{Call: LegacyLoad, Kernel: kernel, Initrd: initrd, Cmdline: cmdline, Errno: legacyErrno(err), Err: err}
	if fallback != nil {
		return Method{}, sc.refusal(fmt.Errorf("%w (after %v)", serr, fallback))
	}
	return Method{}, sc.refusal(serr)
}

func fileInitrdFd(rf *os.File) int {
	if rf == nil {
		return -1
	}
	return int(rf.Fd())
}

func fileFlags(rf *os.File) int {
	if rf == nil {
		return unix.KEXEC_FILE_NO_INITRAMFS
	}
	return 0
}

// rewind puts both files back at their start for the other syscall.
func rewind(files ...*os.File) error {
	for _, f := range files {
		if f == nil {
			continue
		}
		if _, err := f.Seek(0, 0); err != nil {
			return fmt.Errorf("kexec: rewinding %s: %w", f.Name(), err)
		}
	}
	return nil
}

// legacyErrno is the kernel's answer inside a kexec_load failure, or 0
// when it failed before the kernel was asked.
func legacyErrno(err error) unix.Errno {
	var ek ukexec.ErrKexec
	if errors.As(err, &ek) {
		return unix.Errno(ek.Errno)
	}
	return errnoOf(err)
}

// InitrdPartsApply says why LoadInitrdParts cannot load on this machine,
// or nil: it is kexec_load's bzImage path (bzplan.go), for x86-64 booted
// without EFI and without lockdown.
func InitrdPartsApply() error {
	mode, err := LockdownMode()
	if err != nil {
		return fmt.Errorf("lockdown mode unknown: %w", err)
	}
	if mode != "none" {
		return fmt.Errorf("kernel locked down [%s]: only kexec_file_load may load", mode)
	}
	return legacyFirst()
}

// LoadInitrdParts loads kernel with cmdline and an initrd that is parts
// laid end to end, each on a page boundary (initrd.PatchInPlace), by
// kexec_load, without writing that initrd to a file first. Where
// InitrdPartsApply refuses, or the load fails, the caller writes the
// initrd to a file for Load, which can also use kexec_file_load.
func LoadInitrdParts(kernel string, parts [][]byte, cmdline string) (Method, error) {
	if err := InitrdPartsApply(); err != nil {
		return Method{}, err
	}
	kf, err := os.Open(kernel)
	if err != nil {
		return Method{}, fmt.Errorf("kexec: %w", err)
	}
	defer kf.Close()
	bz, err := ParseBzImage(kf)
	if err != nil {
		return Method{}, fmt.Errorf("%s: %w", kernel, err)
	}
	if err := bz.CheckCmdline(cmdline); err != nil {
		return Method{}, fmt.Errorf("%s: %w", kernel, err)
	}
	if err := loadParts(kf, parts, cmdline); err != nil {
		return Method{}, (realSyscalls()).refusal(&SyscallError{Call: LegacyLoad, Kernel: kernel, Initrd: "(in memory)", Cmdline: cmdline, Errno: legacyErrno(err), Err: err})
	}
	return Method{Syscall: LegacyLoad}, nil
}
