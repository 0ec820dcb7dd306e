package nfsroot

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// maxSymlinks is the kernel's limit on symlinks followed in one lookup.
const maxSymlinks = 40

// resolveIn resolves p as if root were "/": symlinks are followed, absolute
// targets and ".." are taken relative to root, so the result never leaves
// root (a symlink /sbin/init -> /lib/systemd/systemd on the new root must
// not be looked up in the initramfs). It returns the host path. A missing
// component ends the walk: the rest is appended unresolved and the result
// is returned together with an error matching fs.ErrNotExist.
func resolveIn(root, p string) (string, error) {
	rest := strings.Split(path.Clean("/"+p), "/")
	cur := "/"
	links := 0
	for len(rest) > 0 {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			cur = path.Dir(cur)
			continue
		}
		next := path.Join(cur, c)
		host := filepath.Join(root, next)
		fi, err := os.Lstat(host)
		if err != nil {
			full := filepath.Join(append([]string{host}, rest...)...)
			if errors.Is(err, fs.ErrNotExist) {
				return full, fmt.Errorf("%s in %s: %w", path.Join(append([]string{next}, rest...)...), root, fs.ErrNotExist)
			}
			return full, err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			cur = next
			continue
		}
		if links++; links > maxSymlinks {
			return host, fmt.Errorf("%s in %s: too many levels of symbolic links", p, root)
		}
		target, err := os.Readlink(host)
		if err != nil {
			return host, err
		}
		if strings.HasPrefix(target, "/") {
			cur = "/"
		}
		rest = append(strings.Split(target, "/"), rest...)
	}
	return filepath.Join(root, cur), nil
}
