package rootprep

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"path"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// tarTree writes root's contents as a PAX tar stream to w: owners by
// number, hard links as links, device nodes, and extended attributes as
// SCHILY.xattr records (what GNU tar --xattrs reads). The root is the
// lent server's and may change while it is read: it is walked through
// directory handles (at_linux.go), nothing outside it is ever read, and
// like the copy it does not descend into other file systems mounted in it.
func tarTree(ctx context.Context, w io.Writer, root string, pr *progress) (Stats, error) {
	pfd, name, fd, st, err := openRootDir(root)
	if err != nil {
		return Stats{}, err
	}
	defer unix.Close(pfd)
	defer unix.Close(fd)
	tw := tar.NewWriter(w)
	t := &tarrer{ctx: ctx, tw: tw, dev: st.Dev, links: map[inode]string{}, pr: pr}
	err = t.header(pfd, name, root, "./", &st, "")
	if err == nil {
		err = t.children(fd, root, "")
	}
	pr.done(&t.st)
	if err != nil {
		return t.st, err
	}
	return t.st, tw.Close()
}

type tarrer struct {
	ctx   context.Context
	tw    *tar.Writer
	dev   uint64
	links map[inode]string
	st    Stats
	pr    *progress
}

// children archives the entries of the directory dirfd (p on disk, rel
// in the archive).
func (t *tarrer) children(dirfd int, p, rel string) error {
	names, err := readNames(dirfd)
	if err != nil {
		return fmt.Errorf("read dir %s: %w", p, err)
	}
	for _, name := range names {
		if err := t.entry(dirfd, name, filepath.Join(p, name), path.Join(rel, name)); err != nil {
			return err
		}
	}
	return nil
}

func (t *tarrer) entry(dirfd int, name, p, rel string) error {
	if err := t.ctx.Err(); err != nil {
		return err
	}
	st, err := statAt(dirfd, name)
	if err != nil {
		return fmt.Errorf("lstat %s: %w", p, err)
	}
	t.pr.opening(p)
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFSOCK:
		return nil // a socket a running program left: nothing to keep
	case unix.S_IFREG:
		f, err := openFileAt(dirfd, name, &st)
		if err != nil {
			return fmt.Errorf("tar %s: %w", p, err)
		}
		defer f.Close()
		if err := unix.Fstat(int(f.Fd()), &st); err != nil {
			return fmt.Errorf("tar %s: %w", p, err)
		}
		if err := t.header(dirfd, name, p, rel, &st, ""); err != nil {
			return err
		}
		if st.Nlink > 1 && t.links[inode{uint64(st.Dev), st.Ino}] != rel {
			return nil // written as a hard link
		}
		if _, err := io.CopyN(t.tw, f, st.Size); err != nil {
			return fmt.Errorf("tar %s: %w (did it change while archived?)", p, err)
		}
		return nil
	case unix.S_IFDIR:
		sub, err := openDirAt(dirfd, name, &st)
		if err != nil {
			return fmt.Errorf("tar %s: %w", p, err)
		}
		defer unix.Close(sub)
		if err := t.header(dirfd, name, p, rel+"/", &st, ""); err != nil {
			return err
		}
		if st.Dev != t.dev {
			return nil
		}
		return t.children(sub, p, rel)
	case unix.S_IFLNK:
		target, err := readlinkAt(dirfd, name)
		if err != nil {
			return fmt.Errorf("tar %s: readlink: %w", p, err)
		}
		return t.header(dirfd, name, p, rel, &st, target)
	case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO:
		return t.header(dirfd, name, p, rel, &st, "")
	}
	return fmt.Errorf("tar %s: unknown file type %#o", p, st.Mode&unix.S_IFMT)
}

// header writes the tar header of name in dirfd, described by st.
func (t *tarrer) header(dirfd int, name, p, rel string, st *unix.Stat_t, link string) error {
	hdr := &tar.Header{Name: rel, Mode: int64(st.Mode & 0o7777), Uid: int(st.Uid), Gid: int(st.Gid),
		ModTime:    time.Unix(st.Mtim.Unix()),
		AccessTime: time.Unix(st.Atim.Unix()),
		ChangeTime: time.Unix(st.Ctim.Unix()),
		Format:     tar.FormatPAX}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		hdr.Typeflag, hdr.Size = tar.TypeReg, st.Size
		if st.Nlink > 1 {
			id := inode{uint64(st.Dev), st.Ino}
			if first, ok := t.links[id]; ok {
				hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
				t.st.HardLinks++
			} else {
				t.links[id] = rel
			}
		}
	case unix.S_IFDIR:
		hdr.Typeflag = tar.TypeDir
	case unix.S_IFLNK:
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, link
	case unix.S_IFCHR, unix.S_IFBLK:
		hdr.Typeflag = tar.TypeChar
		if st.Mode&unix.S_IFMT == unix.S_IFBLK {
			hdr.Typeflag = tar.TypeBlock
		}
		hdr.Devmajor, hdr.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
	}
	t.count(hdr)
	if err := t.xattrRecords(procAt(dirfd, name), hdr); err != nil {
		return fmt.Errorf("tar %s: %w", p, err)
	}
	if err := t.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("tar %s: %w", p, err)
	}
	t.pr.tick(&t.st)
	return nil
}

func (t *tarrer) count(hdr *tar.Header) {
	switch hdr.Typeflag {
	case tar.TypeReg:
		t.st.Files++
		t.st.Bytes += hdr.Size
	case tar.TypeDir:
		t.st.Dirs++
	case tar.TypeSymlink:
		t.st.Symlinks++
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		t.st.Devices++
	}
}

// xattrRecords adds the attributes of the entry at p (a /proc/self/fd
// path whose last component is not followed) to hdr.
func (t *tarrer) xattrRecords(p string, hdr *tar.Header) error {
	names, err := listXattrs(p)
	if err != nil {
		return err
	}
	for _, n := range names {
		v, err := getXattr(p, n)
		if err != nil {
			return err
		}
		if hdr.PAXRecords == nil {
			hdr.PAXRecords = map[string]string{}
		}
		hdr.PAXRecords["SCHILY.xattr."+n] = string(v)
	}
	return nil
}
