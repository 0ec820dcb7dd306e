package rootprep

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// tarTree writes root's contents as a PAX tar stream to w: owners by
// number, hard links as links, device nodes, and extended attributes as
// SCHILY.xattr records (what GNU tar --xattrs reads).
func tarTree(ctx context.Context, w io.Writer, root string, pr *progress) (Stats, error) {
	tw := tar.NewWriter(w)
	t := &tarrer{ctx: ctx, tw: tw, root: root, links: map[inode]string{}, pr: pr}
	err := filepath.WalkDir(root, t.walk)
	pr.done(&t.st)
	if err != nil {
		return t.st, err
	}
	return t.st, tw.Close()
}

type tarrer struct {
	ctx   context.Context
	tw    *tar.Writer
	root  string
	links map[inode]string
	st    Stats
	pr    *progress
}

func (t *tarrer) walk(p string, d fs.DirEntry, err error) error {
	if err != nil {
		return err
	}
	if err := t.ctx.Err(); err != nil {
		return err
	}
	if d.Type()&fs.ModeSocket != 0 {
		return nil // a socket a running program left: nothing to keep
	}
	rel, err := filepath.Rel(t.root, p)
	if err != nil {
		return err
	}
	info, err := d.Info()
	if err != nil {
		return err
	}
	hdr, err := t.header(p, rel, info)
	if err != nil {
		return err
	}
	if err := t.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("tar %s: %w", p, err)
	}
	t.pr.tick(&t.st)
	if hdr.Typeflag != tar.TypeReg {
		return nil
	}
	return t.body(p, hdr.Size)
}

func (t *tarrer) header(p, rel string, info fs.FileInfo) (*tar.Header, error) {
	link := ""
	if info.Mode()&fs.ModeSymlink != 0 {
		var err error
		if link, err = os.Readlink(p); err != nil {
			return nil, err
		}
	}
	hdr, err := tar.FileInfoHeader(info, link)
	if err != nil {
		return nil, fmt.Errorf("tar %s: %w", p, err)
	}
	hdr.Name = filepath.ToSlash(rel)
	if info.IsDir() {
		hdr.Name += "/"
	}
	hdr.Uname, hdr.Gname = "", ""
	hdr.Format = tar.FormatPAX
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return nil, fmt.Errorf("tar %s: no stat data", p)
	}
	if hdr.Typeflag == tar.TypeReg && st.Nlink > 1 {
		id := inode{uint64(st.Dev), st.Ino}
		if first, ok := t.links[id]; ok {
			hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
			t.st.HardLinks++
		} else {
			t.links[id] = hdr.Name
		}
	}
	t.count(hdr)
	return hdr, t.xattrRecords(p, hdr)
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

func (t *tarrer) body(p string, size int64) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := io.CopyN(t.tw, f, size); err != nil {
		return fmt.Errorf("tar %s: %w (did it change while archived?)", p, err)
	}
	return nil
}
