//go:build linux && (amd64 || arm64)

package kexec

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// SyscallError is a failed kexec system call and the arguments that matter.
type SyscallError struct {
	Call    Syscall
	Kernel  string
	Initrd  string
	Cmdline string
	// Errno is the kernel's answer; zero when the call failed before the
	// kernel was asked (the legacy path parses and places the image itself).
	Errno unix.Errno
	Err   error
}

func (e *SyscallError) Error() string {
	s := fmt.Sprintf("%s(kernel=%q, initrd=%q, cmdline=%q) = ", e.Call, e.Kernel, e.Initrd, e.Cmdline)
	if e.Errno != 0 {
		s += fmt.Sprintf("%s (%v)", unix.ErrnoName(e.Errno), e.Errno)
		if e.Errno == unix.ETXTBSY {
			s += ": a process has the file open for writing"
		}
		return s
	}
	return s + e.Err.Error()
}

func (e *SyscallError) Unwrap() error {
	if e.Errno != 0 {
		return e.Errno
	}
	return e.Err
}

// refusal turns EPERM into the one message an operator needs: neither
// syscall will work, whatever the image. When the kernel is locked down
// (Secure Boot usually does that) it says so and what would work instead,
// so the lease's failure report names the cause rather than a bare EPERM.
func (sc syscalls) refusal(err error) error {
	if !errors.Is(err, unix.EPERM) {
		return err
	}
	mode := ""
	if sc.lockdown != nil {
		mode, _ = sc.lockdown()
	}
	if Locked(mode) {
		return &LockdownError{Mode: mode, Err: err}
	}
	return fmt.Errorf("kexec refused (EPERM): kernel lockdown or missing CAP_SYS_BOOT: %w", err)
}

// LockdownError is a kexec refused by kernel lockdown.
type LockdownError struct {
	Mode string // integrity or confidentiality
	Err  error
}

func (e *LockdownError) Error() string {
	return fmt.Sprintf("kexec refused: image A's kernel is locked down [%s] (Secure Boot): it runs only kernels "+
		"signed with a key it trusts (kexec_file_load, KEXEC_SIG) and refuses kexec_load; image B's kernel is not "+
		"signed with such a key: sign it (docs/SECURITY.md, \"Secure Boot\") or boot the server without Secure Boot: %v", e.Mode, e.Err)
}

func (e *LockdownError) Unwrap() error { return e.Err }

// fallbackFixes reports whether kexec_load can succeed where
// kexec_file_load failed with errno: the kernel lacks KEXEC_FILE (ENOSYS),
// or its file loader rejected the image's format or signature (ENOEXEC,
// EKEYREJECTED, EBADMSG, ENOPKG). EPERM (lockdown, capability) and I/O or
// memory errors fail the same way on both paths.
func fallbackFixes(errno unix.Errno) bool {
	switch errno {
	case unix.ENOSYS, unix.ENOEXEC, unix.EKEYREJECTED, unix.EBADMSG, unix.ENOPKG:
		return true
	}
	return false
}

// errnoOf extracts the errno of a failed syscall, or 0.
func errnoOf(err error) unix.Errno {
	var errno unix.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return 0
}
