package kmod

import (
	"bytes"
	"fmt"
	"strings"
)

// Bounds on what a module's .modinfo may hold. The largest section in a
// Debian 6.1 kernel is about 40 KiB (a GPU driver's alias list).
const (
	maxModinfoSize = 1 << 20
	maxEntries     = 1 << 16
	// maxNameLen is the kernel's MODULE_NAME_LEN (64 - sizeof(unsigned long))
	// less the terminating NUL.
	maxNameLen = 55
	// maxAliasLen bounds one alias pattern (the longest in Debian 6.1,
	// an input device's, is about 400 bytes).
	maxAliasLen = 4096
)

// Info is what ferry needs from a module's .modinfo section.
type Info struct {
	// Name is the name= field: the name the kernel will know the module by.
	Name string
	// Depends lists the modules whose symbols this one uses (depends=),
	// in the order modpost wrote them. Built-in code is never listed.
	Depends []string
	// Vermagic is the vermagic= field; its first word is the kernel release
	// the module was built for.
	Vermagic string
	// Aliases are the alias= fields: fnmatch patterns of the device
	// modaliases the module drives (what depmod writes to modules.alias).
	Aliases []string
}

// Release returns the kernel release the module was built for: the first
// word of vermagic, or "" when there is no vermagic.
func (i Info) Release() string {
	f := strings.Fields(i.Vermagic)
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

// ParseModinfo parses the contents of a .modinfo section: NUL-separated
// key=value strings, possibly with NUL padding between them. Keys other than
// name, depends and vermagic are ignored; aliases, parameters and licenses
// may repeat. An entry without '=' or a malformed module name is an error
// that gives the entry's byte offset.
func ParseModinfo(data []byte) (Info, error) {
	var info Info
	if len(data) > maxModinfoSize {
		return info, fmt.Errorf("modinfo: %d bytes exceeds the %d byte limit", len(data), maxModinfoSize)
	}
	seen := map[string]bool{}
	n := 0
	for off := 0; off < len(data); {
		end := bytes.IndexByte(data[off:], 0)
		if end < 0 {
			end = len(data) - off
		}
		entry := data[off : off+end]
		start := off
		off += end + 1
		if len(entry) == 0 {
			continue // alignment padding
		}
		if n++; n > maxEntries {
			return info, fmt.Errorf("modinfo: more than %d entries", maxEntries)
		}
		key, value, ok := bytes.Cut(entry, []byte("="))
		if !ok || len(key) == 0 {
			return info, fmt.Errorf("modinfo: entry at offset %d is not key=value: %q", start, truncate(entry))
		}
		k := string(key)
		if k == "alias" {
			if len(value) == 0 || len(value) > maxAliasLen {
				return info, fmt.Errorf("modinfo: alias= at offset %d: length %d", start, len(value))
			}
			info.Aliases = append(info.Aliases, string(value))
			continue
		}
		switch k {
		case "name", "depends", "vermagic":
		default:
			continue
		}
		if seen[k] {
			return info, fmt.Errorf("modinfo: %s= repeated at offset %d", k, start)
		}
		seen[k] = true
		switch k {
		case "name":
			if err := checkName(string(value)); err != nil {
				return info, fmt.Errorf("modinfo: name= at offset %d: %w", start, err)
			}
			info.Name = string(value)
		case "depends":
			deps, err := parseDepends(string(value))
			if err != nil {
				return info, fmt.Errorf("modinfo: depends= at offset %d: %w", start, err)
			}
			info.Depends = deps
		case "vermagic":
			info.Vermagic = string(value)
		}
	}
	return info, nil
}

// parseDepends splits a depends= value. An empty value means no dependencies.
func parseDepends(v string) ([]string, error) {
	if v == "" {
		return nil, nil
	}
	var deps []string
	for _, d := range strings.Split(v, ",") {
		if err := checkName(d); err != nil {
			return nil, err
		}
		deps = append(deps, d)
	}
	return deps, nil
}

// checkName accepts what can be a module name: non-empty, at most
// MODULE_NAME_LEN-1 bytes, and no path separators, spaces or control bytes.
func checkName(n string) error {
	if n == "" {
		return fmt.Errorf("empty module name")
	}
	if len(n) > maxNameLen {
		return fmt.Errorf("module name %q longer than %d bytes", truncate([]byte(n)), maxNameLen)
	}
	for i := 0; i < len(n); i++ {
		if c := n[i]; c <= ' ' || c == '/' || c == ',' || c == '=' || c >= 0x7f {
			return fmt.Errorf("module name %q has byte %#02x at %d", n, c, i)
		}
	}
	return nil
}

// NormalizeName maps a module name to the form the kernel compares: '-' and
// '_' are the same character in module names.
func NormalizeName(n string) string { return strings.ReplaceAll(n, "-", "_") }

func truncate(b []byte) string {
	const max = 64
	if len(b) > max {
		return string(b[:max]) + "..."
	}
	return string(b)
}
