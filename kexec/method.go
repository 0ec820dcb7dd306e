package kexec

import "fmt"

// Options choose how Load talks to the kernel.
type Options struct {
	// ForceFile uses kexec_file_load only (kexec-tools' -s).
	ForceFile bool
	// ForceLegacy uses kexec_load only (kexec-tools' -c).
	ForceLegacy bool
}

// Syscall names the system call that loaded the kernel.
type Syscall string

const (
	FileLoad   Syscall = "kexec_file_load"
	LegacyLoad Syscall = "kexec_load"
)

// Method says how a kernel was loaded.
type Method struct {
	Syscall Syscall
	// Fallback is why kexec_file_load was not used when Syscall is
	// kexec_load after trying it; nil otherwise.
	Fallback error
	// Forced is set when Options chose the syscall.
	Forced bool
}

// String reads "kexec_file_load", "kexec_load (forced)" or
// "kexec_load (fallback: kexec_file_load(...) = ENOSYS ...)".
func (m Method) String() string {
	switch {
	case m.Fallback != nil:
		return fmt.Sprintf("%s (fallback: %v)", m.Syscall, m.Fallback)
	case m.Forced:
		return fmt.Sprintf("%s (forced)", m.Syscall)
	}
	return string(m.Syscall)
}
