package rootprep

import (
	"bytes"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// maxXattr bounds one attribute's value and the list of names (the
// kernel's XATTR_SIZE_MAX and XATTR_LIST_MAX are both 64 KiB).
const maxXattr = 64 << 10

// xattrs copies src's extended attributes to dst, not following symlinks.
// An attribute dst's file system or our privileges refuse is counted, not
// fatal: "where possible".
func (c *copier) xattrs(src, dst string) error {
	names, err := listXattrs(src)
	if err != nil {
		return err
	}
	for _, name := range names {
		val, err := getXattr(src, name)
		if err != nil {
			return err
		}
		if err := unix.Lsetxattr(dst, name, val, 0); err != nil {
			if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EPERM) {
				c.st.XattrsSkipped++
				continue
			}
			return fmt.Errorf("lsetxattr %s %s: %w", dst, name, err)
		}
	}
	return nil
}

// listXattrs returns the names of p's extended attributes. It asks for
// the size first: most files have none, and a 64 KiB buffer per file would
// dominate a tree copy.
func listXattrs(p string) ([]string, error) {
	n, err := unix.Llistxattr(p, nil)
	if errors.Is(err, unix.ENOTSUP) || n == 0 && err == nil {
		return nil, nil
	}
	if err == nil {
		buf := make([]byte, min(n, maxXattr))
		n, err = unix.Llistxattr(p, buf)
		buf = buf[:max(n, 0)]
		if err == nil {
			return splitNames(buf), nil
		}
	}
	return nil, fmt.Errorf("llistxattr %s: %w", p, err)
}

// getXattr reads one attribute's value, bounded by maxXattr.
func getXattr(p, name string) ([]byte, error) {
	n, err := unix.Lgetxattr(p, name, nil)
	if err == nil {
		buf := make([]byte, min(n, maxXattr))
		n, err = unix.Lgetxattr(p, name, buf)
		if err == nil {
			return buf[:n], nil
		}
	}
	return nil, fmt.Errorf("lgetxattr %s %s: %w", p, name, err)
}

func splitNames(buf []byte) []string {
	var names []string
	for _, b := range bytes.Split(buf, []byte{0}) {
		if len(b) > 0 {
			names = append(names, string(b))
		}
	}
	return names
}
