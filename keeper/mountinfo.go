package keeper

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// Mount is one line of /proc/PID/mountinfo, the fields ferry needs.
type Mount struct {
	MountPoint string
	FSType     string
	Source     string
	// SuperReadOnly: the file system itself (not only this mount) is
	// read-only, as "mount -o remount,ro" leaves it; the kernel has synced
	// it on the way (sync_filesystem in reconfigure_super).
	SuperReadOnly bool
}

// RootMount returns the mount at "/" as the reading process sees it (the
// kernel prints mount points relative to the reader's root). With several
// mounts stacked on "/", the last one is the visible one.
func RootMount(r io.Reader) (*Mount, error) {
	var root *Mount
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		m, err := parseMountinfo(sc.Text())
		if err != nil {
			return nil, fmt.Errorf("mountinfo line %d: %w", n, err)
		}
		if m.MountPoint == "/" {
			root = m
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("mountinfo: %w", err)
	}
	if root == nil {
		return nil, fmt.Errorf("mountinfo: no mount at /")
	}
	return root, nil
}

// Mounts returns every mount of a mountinfo table, in its order.
func Mounts(r io.Reader) ([]Mount, error) {
	var out []Mount
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		if n > maxMounts {
			return nil, fmt.Errorf("mountinfo: more than %d mounts", maxMounts)
		}
		m, err := parseMountinfo(sc.Text())
		if err != nil {
			return nil, fmt.Errorf("mountinfo line %d: %w", n, err)
		}
		out = append(out, *m)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("mountinfo: %w", err)
	}
	return out, nil
}

// maxMounts bounds a mount table read; a machine has tens to hundreds.
const maxMounts = 1 << 16

// parseMountinfo reads "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [TAGS...] - FSTYPE SOURCE SUPEROPTS".
func parseMountinfo(line string) (*Mount, error) {
	f := strings.Fields(line)
	sep := -1
	for i := 6; i < len(f); i++ {
		if f[i] == "-" {
			sep = i
			break
		}
	}
	if len(f) < 7 || sep < 0 || sep+2 >= len(f) {
		return nil, fmt.Errorf("malformed: %q", line)
	}
	m := &Mount{MountPoint: unescape(f[4]), FSType: f[sep+1], Source: unescape(f[sep+2])}
	if sep+3 < len(f) {
		for _, o := range strings.Split(f[sep+3], ",") {
			if o == "ro" {
				m.SuperReadOnly = true
			}
		}
	}
	return m, nil
}

// unescape undoes the kernel's octal escapes (\040 for space and so on).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1:i+4]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '7' {
			return false
		}
	}
	return len(s) == 3
}
