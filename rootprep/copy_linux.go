package rootprep

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// inode identifies a file for hard link detection.
type inode struct{ dev, ino uint64 }

// copier holds one tree copy's state. Both trees are walked through
// directory handles (at_linux.go).
type copier struct {
	ctx     context.Context
	dev     uint64           // the template's file system; others are not entered
	dstRoot int              // the new root, where hard links are resolved
	links   map[inode]string // first copy of each multiply-linked file, relative to dstRoot
	st      Stats
	pr      *progress
}

// copyTree copies the contents of the directory src into the existing
// directory dst, then gives dst src's owner, mode, attributes and times.
func copyTree(ctx context.Context, src, dst string, pr *progress) (Stats, error) {
	spfd, sname, sfd, st, err := openRootDir(src)
	if err != nil {
		return Stats{}, fmt.Errorf("template: %w", err)
	}
	defer unix.Close(spfd)
	defer unix.Close(sfd)
	dpfd, dname, err := openParent(dst)
	if err != nil {
		return Stats{}, err
	}
	defer unix.Close(dpfd)
	dfd, err := openDirAt(dpfd, dname, nil)
	if err != nil {
		return Stats{}, fmt.Errorf("open %s: %w", dst, err)
	}
	defer unix.Close(dfd)
	c := &copier{ctx: ctx, dev: st.Dev, dstRoot: dfd, links: map[inode]string{}, pr: pr}
	c.st.Dirs++
	err = c.children(sfd, dfd, src, "")
	if err == nil {
		err = c.meta(spfd, sname, dpfd, dname, src, &st)
	}
	pr.done(&c.st)
	return c.st, err
}

// children copies the entries of the directory sfd (the template's
// srcPath, for messages) into dfd (rel in the new root).
func (c *copier) children(sfd, dfd int, srcPath, rel string) error {
	names, err := readNames(sfd)
	if err != nil {
		return fmt.Errorf("read dir %s: %w", srcPath, err)
	}
	for _, name := range names {
		if err := c.entry(sfd, dfd, name, filepath.Join(srcPath, name), path.Join(rel, name)); err != nil {
			return err
		}
	}
	return nil
}

// entry copies name of sfd into dfd; src names it for messages, rel is
// its path in the new root.
func (c *copier) entry(sfd, dfd int, name, src, rel string) error {
	if err := c.ctx.Err(); err != nil {
		return err
	}
	st, err := statAt(sfd, name)
	if err != nil {
		return fmt.Errorf("lstat %s: %w", src, err)
	}
	defer c.pr.tick(&c.st)
	c.pr.opening(src)
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return c.dir(sfd, dfd, name, src, rel, &st)
	case unix.S_IFREG:
		return c.file(sfd, dfd, name, src, rel, &st)
	case unix.S_IFLNK:
		return c.symlink(sfd, dfd, name, src, &st)
	case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO:
		return c.node(sfd, dfd, name, src, &st)
	case unix.S_IFSOCK:
		return fmt.Errorf("%s: a socket belongs to a running program, not a template", src)
	}
	return fmt.Errorf("%s: unknown file type %#o", src, st.Mode&unix.S_IFMT)
}

// dir makes the directory, copies its children (unless it is on another
// file system) and then sets its metadata, so the children's creation
// does not change its times and a read-only mode does not block them.
func (c *copier) dir(sfd, dfd int, name, src, rel string, st *unix.Stat_t) error {
	c.st.Dirs++
	if err := unix.Mkdirat(dfd, name, 0o700); err != nil {
		return fmt.Errorf("mkdir %s: %w", rel, err)
	}
	if st.Dev == c.dev {
		sub, err := openDirAt(sfd, name, st)
		if err != nil {
			return fmt.Errorf("template %s: %w", src, err)
		}
		defer unix.Close(sub)
		dsub, err := openDirAt(dfd, name, nil)
		if err != nil {
			return fmt.Errorf("new root %s: %w", rel, err)
		}
		defer unix.Close(dsub)
		if err := c.children(sub, dsub, src, rel); err != nil {
			return err
		}
	}
	return c.meta(sfd, name, dfd, name, src, st)
}

func (c *copier) file(sfd, dfd int, name, src, rel string, st *unix.Stat_t) error {
	if st.Nlink > 1 {
		id := inode{uint64(st.Dev), st.Ino}
		if first, ok := c.links[id]; ok {
			c.st.HardLinks++
			return c.link(first, dfd, name)
		}
		c.links[id] = rel
	}
	c.st.Files++
	in, err := openFileAt(sfd, name, st)
	if err != nil {
		return fmt.Errorf("template %s: %w", src, err)
	}
	defer in.Close()
	if err := c.data(in, dfd, name, rel, st.Size); err != nil {
		return err
	}
	return c.meta(sfd, name, dfd, name, src, st)
}

// link makes name in dfd a hard link to first, a file this copy made.
func (c *copier) link(first string, dfd int, name string) error {
	pfd, err := openBeneath(c.dstRoot, path.Dir(first))
	if err != nil {
		return fmt.Errorf("link %s: %w", first, err)
	}
	defer unix.Close(pfd)
	if err := unix.Linkat(pfd, path.Base(first), dfd, name, 0); err != nil {
		return fmt.Errorf("link %s %s: %w", first, name, err)
	}
	return nil
}

// data creates name in dfd with in's bytes: reflink, else
// copy_file_range, else read and write.
func (c *copier) data(in *os.File, dfd int, name, rel string, size int64) error {
	fd, err := unix.Openat(dfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", rel, err)
	}
	out := os.NewFile(uintptr(fd), rel)
	defer out.Close()
	if size > 0 && unix.IoctlFileClone(int(out.Fd()), int(in.Fd())) == nil {
		c.st.Bytes += size
		c.st.ReflinkBytes += size
		return out.Close()
	}
	// Bytes count as they go: a large file shows progress, and a
	// cancelled copy stops within one chunk, not at the file's end.
	_, err = copyRange(c.ctx, in, out, func(n int64) {
		c.st.Bytes += n
		c.pr.bytes(&c.st)
	})
	if err != nil {
		return fmt.Errorf("copy %s: %w", rel, err)
	}
	return out.Close()
}

// copyChunk is how much copyRange moves between two looks at ctx: small
// enough that a cancelled copy of a 50 GB file stops within a second or
// so, large enough that the system calls cost nothing.
const copyChunk = 64 << 20

// copyRange copies with copy_file_range until EOF, falling back to a plain
// copy when the kernel refuses (cross-device on old kernels, special file
// systems); copied is told each chunk's bytes.
func copyRange(ctx context.Context, in, out *os.File, copied func(int64)) (int64, error) {
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n, err := unix.CopyFileRange(int(in.Fd()), nil, int(out.Fd()), nil, copyChunk, 0)
		if err != nil {
			if errors.Is(err, unix.EXDEV) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL) {
				m, err := io.Copy(&ctxWriter{ctx: ctx, w: out, copied: copied}, in)
				return total + m, err
			}
			return total, err
		}
		if n == 0 {
			return total, nil
		}
		total += int64(n)
		copied(int64(n))
	}
}

// ctxWriter is the read-and-write fallback's destination: it stops at
// ctx's end and counts what it wrote.
type ctxWriter struct {
	ctx    context.Context
	w      io.Writer
	copied func(int64)
}

func (w *ctxWriter) Write(b []byte) (int, error) {
	if err := w.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := w.w.Write(b)
	w.copied(int64(n))
	return n, err
}

func (c *copier) symlink(sfd, dfd int, name, src string, st *unix.Stat_t) error {
	target, err := readlinkAt(sfd, name)
	if err != nil {
		return fmt.Errorf("readlink %s: %w", src, err)
	}
	if err := unix.Symlinkat(target, dfd, name); err != nil {
		return fmt.Errorf("symlink %s: %w", src, err)
	}
	c.st.Symlinks++
	return c.meta(sfd, name, dfd, name, src, st)
}

// readlinkAt reads the symlink name in dirfd, whatever its length.
func readlinkAt(dirfd int, name string) (string, error) {
	for size := 256; size <= unix.PathMax*4; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
	return "", fmt.Errorf("symlink %s: target too long", name)
}

func (c *copier) node(sfd, dfd int, name, src string, st *unix.Stat_t) error {
	if err := unix.Mknodat(dfd, name, st.Mode&(unix.S_IFMT|0o777), int(st.Rdev)); err != nil {
		return fmt.Errorf("mknod %s: %w", src, err)
	}
	c.st.Devices++
	return c.meta(sfd, name, dfd, name, src, st)
}

// meta gives dname in dpfd the owner, mode, extended attributes and
// times of sname in spfd (st), never following a symlink on either side.
// chown comes before chmod, which chown would undo for setuid bits.
func (c *copier) meta(spfd int, sname string, dpfd int, dname, src string, st *unix.Stat_t) error {
	if err := unix.Fchownat(dpfd, dname, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("lchown %s %d:%d: %w", src, st.Uid, st.Gid, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		if err := chmodAt(dpfd, dname, st.Mode&0o7777); err != nil {
			return fmt.Errorf("chmod %s %#o: %w", src, st.Mode&0o7777, err)
		}
	}
	if err := c.xattrs(procAt(spfd, sname), procAt(dpfd, dname)); err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(dpfd, dname, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("utimensat %s: %w", src, err)
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

// sameDevice reports whether a and b are on one file system.
func sameDevice(a, b fs.FileInfo) bool {
	sa, ok1 := a.Sys().(*syscall.Stat_t)
	sb, ok2 := b.Sys().(*syscall.Stat_t)
	if !ok1 || !ok2 {
		return true
	}
	return sa.Dev == sb.Dev
}
