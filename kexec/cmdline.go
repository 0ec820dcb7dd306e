package kexec

import "strings"

// ReuseCmdline turns the running kernel's command line (the contents of
// /proc/cmdline) into one for the next kernel, as kexec-tools'
// --reuse-cmdline does: BOOT_IMAGE= (added by boot loaders) and initrd=
// (which would name a file of the old boot) are dropped; everything else,
// quoting included, is kept. Arguments after a lone "--" belong to init and
// are kept untouched.
func ReuseCmdline(proc string) string {
	var kept []string
	forInit := false
	for _, w := range splitCmdline(proc) {
		if w == "--" {
			forInit = true
		}
		if !forInit {
			key, _, _ := strings.Cut(w, "=")
			if key == "BOOT_IMAGE" || key == "initrd" {
				continue
			}
		}
		kept = append(kept, w)
	}
	return strings.Join(kept, " ")
}

// AppendCmdline adds extra to base, separated by one space. Kernel
// parameters in extra go before a lone "--" in base, so that they stay
// kernel parameters rather than becoming arguments to init.
func AppendCmdline(base, extra string) string {
	base, extra = strings.TrimSpace(base), strings.TrimSpace(extra)
	switch {
	case extra == "":
		return base
	case base == "":
		return extra
	}
	words := splitCmdline(base)
	for i, w := range words {
		if w == "--" {
			head := strings.Join(words[:i], " ")
			return strings.TrimSpace(head+" "+extra) + " " + strings.Join(words[i:], " ")
		}
	}
	return base + " " + extra
}

// splitCmdline splits a command line into words the way the kernel's
// next_arg does: at spaces, except inside double quotes.
func splitCmdline(s string) []string {
	var words []string
	start, quoted := -1, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			quoted = !quoted
		case !quoted && isSpace(c):
			if start >= 0 {
				words = append(words, s[start:i])
				start = -1
			}
			continue
		}
		if start < 0 {
			start = i
		}
	}
	if start >= 0 {
		words = append(words, s[start:])
	}
	return words
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
