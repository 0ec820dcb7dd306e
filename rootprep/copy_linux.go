package rootprep

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// inode identifies a file for hard link detection.
type inode struct{ dev, ino uint64 }

// copier holds one tree copy's state.
type copier struct {
	ctx   context.Context
	dev   uint64           // the template's file system; others are not entered
	links map[inode]string // first copy of each multiply-linked file
	st    Stats
	pr    *progress
}

// copyTree copies the contents of the directory src into the existing
// directory dst, then gives dst src's owner, mode, attributes and times.
func copyTree(ctx context.Context, src, dst string, pr *progress) (Stats, error) {
	var st unix.Stat_t
	if err := unix.Lstat(src, &st); err != nil {
		return Stats{}, fmt.Errorf("lstat %s: %w", src, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return Stats{}, fmt.Errorf("template %s: not a directory", src)
	}
	c := &copier{ctx: ctx, dev: st.Dev, links: map[inode]string{}, pr: pr}
	err := c.dir(src, dst, &st)
	pr.done(&c.st)
	return c.st, err
}

func (c *copier) entry(src, dst string) error {
	if err := c.ctx.Err(); err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Lstat(src, &st); err != nil {
		return fmt.Errorf("lstat %s: %w", src, err)
	}
	defer c.pr.tick(&c.st)
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		if err := unix.Mkdir(dst, 0o700); err != nil {
			return fmt.Errorf("mkdir %s: %w", dst, err)
		}
		return c.dir(src, dst, &st)
	case unix.S_IFREG:
		return c.file(src, dst, &st)
	case unix.S_IFLNK:
		return c.symlink(src, dst, &st)
	case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO:
		return c.node(src, dst, &st)
	case unix.S_IFSOCK:
		return fmt.Errorf("%s: a socket belongs to a running program, not a template", src)
	}
	return fmt.Errorf("%s: unknown file type %#o", src, st.Mode&unix.S_IFMT)
}

// dir copies the children of src into dst (unless src is on another file
// system) and then sets dst's metadata, so the children's creation does
// not change its times and a read-only mode does not block them.
func (c *copier) dir(src, dst string, st *unix.Stat_t) error {
	c.st.Dirs++
	if st.Dev == c.dev {
		ents, err := os.ReadDir(src)
		if err != nil {
			return fmt.Errorf("read dir %s: %w", src, err)
		}
		for _, e := range ents {
			if err := c.entry(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())); err != nil {
				return err
			}
		}
	}
	return c.meta(src, dst, st)
}

func (c *copier) file(src, dst string, st *unix.Stat_t) error {
	if st.Nlink > 1 {
		id := inode{uint64(st.Dev), st.Ino}
		if first, ok := c.links[id]; ok {
			c.st.HardLinks++
			if err := unix.Link(first, dst); err != nil {
				return fmt.Errorf("link %s %s: %w", first, dst, err)
			}
			return nil
		}
		c.links[id] = dst
	}
	c.st.Files++
	if err := c.data(src, dst, st.Size); err != nil {
		return err
	}
	return c.meta(src, dst, st)
}

// data creates dst with src's bytes: reflink, else copy_file_range, else
// read and write.
func (c *copier) data(src, dst string, size int64) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer out.Close()
	if size > 0 && unix.IoctlFileClone(int(out.Fd()), int(in.Fd())) == nil {
		c.st.Bytes += size
		c.st.ReflinkBytes += size
		return out.Close()
	}
	n, err := copyRange(in, out)
	if err != nil {
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	c.st.Bytes += n
	return out.Close()
}

// copyRange copies with copy_file_range until EOF, falling back to a plain
// copy when the kernel refuses (cross-device on old kernels, special file
// systems).
func copyRange(in, out *os.File) (int64, error) {
	var total int64
	for {
		n, err := unix.CopyFileRange(int(in.Fd()), nil, int(out.Fd()), nil, 1<<30, 0)
		if err != nil {
			if errors.Is(err, unix.EXDEV) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL) {
				m, err := io.Copy(out, in)
				return total + m, err
			}
			return total, err
		}
		if n == 0 {
			return total, nil
		}
		total += int64(n)
	}
}

func (c *copier) symlink(src, dst string, st *unix.Stat_t) error {
	target, err := os.Readlink(src)
	if err != nil {
		return err
	}
	if err := os.Symlink(target, dst); err != nil {
		return err
	}
	c.st.Symlinks++
	return c.meta(src, dst, st)
}

func (c *copier) node(src, dst string, st *unix.Stat_t) error {
	if err := unix.Mknod(dst, st.Mode&(unix.S_IFMT|0o777), int(st.Rdev)); err != nil {
		return fmt.Errorf("mknod %s: %w", dst, err)
	}
	c.st.Devices++
	return c.meta(src, dst, st)
}

// meta gives dst src's owner, mode, extended attributes and times, without
// following a symlink. chown comes before chmod, which chown would undo
// for setuid bits.
func (c *copier) meta(src, dst string, st *unix.Stat_t) error {
	if err := unix.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
		return fmt.Errorf("lchown %s %d:%d: %w", dst, st.Uid, st.Gid, err)
	}
	link := st.Mode&unix.S_IFMT == unix.S_IFLNK
	if !link {
		if err := unix.Chmod(dst, st.Mode&0o7777); err != nil {
			return fmt.Errorf("chmod %s %#o: %w", dst, st.Mode&0o7777, err)
		}
	}
	if err := c.xattrs(src, dst); err != nil {
		return err
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, dst, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("utimensat %s: %w", dst, err)
	}
	return nil
}

// renameNoReplace renames src to dst unless dst exists, even as an empty
// directory (which a plain rename would replace).
func renameNoReplace(src, dst string) error {
	if err := unix.Renameat2(unix.AT_FDCWD, src, unix.AT_FDCWD, dst, unix.RENAME_NOREPLACE); err != nil {
		return fmt.Errorf("renameat2(%s, %s, RENAME_NOREPLACE) = %w", src, dst, err)
	}
	return nil
}
