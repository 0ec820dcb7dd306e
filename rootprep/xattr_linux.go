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
	buf := make([]byte, maxXattr)
	for _, name := range names {
		n, err := unix.Lgetxattr(src, name, buf)
		if err != nil {
			return fmt.Errorf("lgetxattr %s %s: %w", src, name, err)
		}
		if err := unix.Lsetxattr(dst, name, buf[:n], 0); err != nil {
			if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EPERM) {
				c.st.XattrsSkipped++
				continue
			}
			return fmt.Errorf("lsetxattr %s %s: %w", dst, name, err)
		}
	}
	return nil
}

func listXattrs(p string) ([]string, error) {
	buf := make([]byte, maxXattr)
	n, err := unix.Llistxattr(p, buf)
	if errors.Is(err, unix.ENOTSUP) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("llistxattr %s: %w", p, err)
	}
	var names []string
	for _, b := range bytes.Split(buf[:n], []byte{0}) {
		if len(b) > 0 {
			names = append(names, string(b))
		}
	}
	return names, nil
}
