package kexec

import (
	"fmt"
	"strings"
)

// LockdownFile is where the kernel shows its lockdown mode (securityfs).
const LockdownFile = "/sys/kernel/security/lockdown"

// ParseLockdown returns the active mode in the text of LockdownFile, the
// bracketed one of "none", "integrity" and "confidentiality" (e.g.
// "none [integrity] confidentiality" is "integrity").
func ParseLockdown(text string) (string, error) {
	for _, f := range strings.Fields(text) {
		if len(f) > 2 && f[0] == '[' && f[len(f)-1] == ']' {
			switch m := f[1 : len(f)-1]; m {
			case "none", "integrity", "confidentiality":
				return m, nil
			}
		}
	}
	return "", fmt.Errorf("lockdown: no active mode in %q", firstWords(text))
}

// Locked reports whether mode restricts kexec: under integrity and
// confidentiality kexec_load is refused and kexec_file_load accepts only
// kernels signed with a key the running kernel trusts.
func Locked(mode string) bool { return mode == "integrity" || mode == "confidentiality" }

func firstWords(s string) string {
	if len(s) > 80 {
		s = s[:80]
	}
	return strings.TrimSpace(s)
}
