package rootprep

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"
)

var bg = context.Background()

func newPreparer(t *testing.T) *Preparer {
	t.Helper()
	dir := t.TempDir()
	p, err := New(filepath.Join(dir, "roots"), filepath.Join(dir, "archives"), nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// template makes a small root with every kind of node Prepare keeps.
func template(t *testing.T) string {
	t.Helper()
	tpl := filepath.Join(t.TempDir(), "template")
	must(t, os.MkdirAll(filepath.Join(tpl, "usr/bin"), 0o755))
	must(t, os.MkdirAll(filepath.Join(tpl, "dev"), 0o755))
	must(t, os.WriteFile(filepath.Join(tpl, "usr/bin/su"), []byte("setuid binary"), 0o644))
	must(t, unix.Chmod(filepath.Join(tpl, "usr/bin/su"), 0o4755))
	must(t, os.WriteFile(filepath.Join(tpl, "usr/bin/busybox"), []byte("many names"), 0o755))
	must(t, os.Link(filepath.Join(tpl, "usr/bin/busybox"), filepath.Join(tpl, "usr/bin/sh")))
	must(t, os.Symlink("usr/bin", filepath.Join(tpl, "bin")))
	must(t, os.Symlink("/etc/shadow", filepath.Join(tpl, "escape-abs")))
	must(t, os.Symlink("../../../outside", filepath.Join(tpl, "escape-rel")))
	must(t, unix.Mknod(filepath.Join(tpl, "dev/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(t, unix.Mkfifo(filepath.Join(tpl, "dev/initctl"), 0o600))
	must(t, os.WriteFile(filepath.Join(tpl, "owned"), []byte("x"), 0o640))
	must(t, os.Lchown(filepath.Join(tpl, "owned"), 1234, 5678))
	must(t, unix.Lsetxattr(filepath.Join(tpl, "owned"), "user.ferry", []byte("kept"), 0))
	must(t, os.MkdirAll(filepath.Join(tpl, "ro"), 0o755))
	must(t, os.WriteFile(filepath.Join(tpl, "ro/file"), []byte("in a read-only dir"), 0o444))
	must(t, os.Chmod(filepath.Join(tpl, "ro"), 0o555))
	return tpl
}

func lstat(t *testing.T, p string) *unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	must(t, unix.Lstat(p, &st))
	return &st
}

func TestPrepareKeepsModesOwnersLinksDevicesAndXattrs(t *testing.T) {
	p := newPreparer(t)
	root, st, err := p.Prepare(bg, template(t), "server-1")
	must(t, err)
	if root != filepath.Join(p.Roots, "server-1") {
		t.Errorf("root at %s", root)
	}
	if m := lstat(t, filepath.Join(root, "usr/bin/su")).Mode; m&0o7777 != 0o4755 {
		t.Errorf("su mode %#o, want setuid 04755", m&0o7777)
	}
	a, b := lstat(t, filepath.Join(root, "usr/bin/busybox")), lstat(t, filepath.Join(root, "usr/bin/sh"))
	if a.Ino != b.Ino || st.HardLinks != 1 {
		t.Errorf("busybox and sh are not one inode (%d, %d), hard links %d", a.Ino, b.Ino, st.HardLinks)
	}
	for link, want := range map[string]string{"bin": "usr/bin", "escape-abs": "/etc/shadow", "escape-rel": "../../../outside"} {
		if got, err := os.Readlink(filepath.Join(root, link)); err != nil || got != want {
			t.Errorf("symlink %s -> %q (%v), want %q", link, got, err, want)
		}
	}
	if d := lstat(t, filepath.Join(root, "dev/null")); d.Mode&unix.S_IFMT != unix.S_IFCHR || d.Rdev != unix.Mkdev(1, 3) {
		t.Errorf("dev/null mode %#o rdev %#x", d.Mode, d.Rdev)
	}
	if d := lstat(t, filepath.Join(root, "dev/initctl")); d.Mode&unix.S_IFMT != unix.S_IFIFO {
		t.Errorf("dev/initctl mode %#o, want a FIFO", d.Mode)
	}
	if o := lstat(t, filepath.Join(root, "owned")); o.Uid != 1234 || o.Gid != 5678 || o.Mode&0o777 != 0o640 {
		t.Errorf("owned: %d:%d %#o", o.Uid, o.Gid, o.Mode&0o777)
	}
	buf := make([]byte, 16)
	if n, err := unix.Lgetxattr(filepath.Join(root, "owned"), "user.ferry", buf); err != nil || string(buf[:n]) != "kept" {
		t.Errorf("xattr user.ferry = %q, %v", buf[:n], err)
	}
	if data, err := os.ReadFile(filepath.Join(root, "ro/file")); err != nil || string(data) != "in a read-only dir" {
		t.Errorf("ro/file = %q, %v", data, err)
	}
	if st.Files != 4 || st.Devices != 2 || st.Symlinks != 3 {
		t.Errorf("stats %+v", st)
	}
	assertNoTemp(t, p.Roots)
}

func TestPrepareRefusesSocketAndLeavesNothing(t *testing.T) {
	p := newPreparer(t)
	tpl := template(t)
	l, err := net.Listen("unix", filepath.Join(tpl, "dev", "log"))
	must(t, err)
	defer l.Close()
	_, _, err = p.Prepare(bg, tpl, "s")
	if err == nil || !strings.Contains(err.Error(), "dev/log") || !strings.Contains(err.Error(), "socket") {
		t.Fatalf("err = %v, want a refusal naming the socket", err)
	}
	if _, err := os.Lstat(filepath.Join(p.Roots, "s")); !errors.Is(err, os.ErrNotExist) {
		t.Error("half-made root left in place")
	}
	assertNoTemp(t, p.Roots)
}

func TestPrepareRefusesExistingRootAndBadName(t *testing.T) {
	p := newPreparer(t)
	tpl := template(t)
	_, _, err := p.Prepare(bg, tpl, "s")
	must(t, err)
	if _, _, err := p.Prepare(bg, tpl, "s"); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("second Prepare: %v, want 'already exists'", err)
	}
	for _, n := range []string{"", "..", "a/b", ".s", "-s"} {
		if _, _, err := p.Prepare(bg, tpl, n); err == nil {
			t.Errorf("Prepare name %q accepted", n)
		}
	}
}

func TestPrepareStopsWhenCancelled(t *testing.T) {
	p := newPreparer(t)
	ctx, cancel := context.WithCancel(bg)
	cancel()
	if _, _, err := p.Prepare(ctx, template(t), "s"); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	assertNoTemp(t, p.Roots)
}

// memDir is a directory on tmpfs when there is one: creating 10,000 files
// on this lab's disk takes seconds of system time.
func memDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("/dev/shm", "rootprep-test-")
	if err != nil {
		return t.TempDir()
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// bigTree writes dirs directories of files files each.
func bigTree(t testing.TB, base string, dirs, files int) string {
	t.Helper()
	tpl := filepath.Join(base, "big")
	for d := range dirs {
		dir := filepath.Join(tpl, fmt.Sprintf("d%03d", d))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for f := range files {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%03d", f)), []byte(dir), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return tpl
}

func TestPrepareTenThousandFilesReportsProgress(t *testing.T) {
	base := memDir(t)
	tpl := bigTree(t, base, 100, 100)
	p, err := New(filepath.Join(base, "roots"), filepath.Join(base, "archives"), nil)
	must(t, err)
	var calls []Stats
	p.Progress = func(s Stats) { calls = append(calls, s) }
	_, st, err := p.Prepare(bg, tpl, "big")
	must(t, err)
	if st.Files != 10000 || st.Dirs != 101 {
		t.Errorf("copied %d files, %d dirs; want 10000, 101", st.Files, st.Dirs)
	}
	if len(calls) < 10 || calls[len(calls)-1] != st {
		t.Errorf("%d progress calls, last %+v; want >= 10 ending with %+v", len(calls), calls[len(calls)-1], st)
	}
}

func TestDeleteRefusesPathsOutsideRoots(t *testing.T) {
	p := newPreparer(t)
	outside := t.TempDir()
	must(t, os.Symlink(outside, filepath.Join(p.Roots, "link")))
	for _, dir := range []string{outside, p.Roots, filepath.Join(p.Roots, ".."), filepath.Join(p.Roots, "link"), "/"} {
		if err := p.Delete(bg, dir); err == nil {
			t.Errorf("Delete(%s) accepted", dir)
		}
	}
	if _, err := os.Stat(outside); err != nil {
		t.Errorf("outside directory harmed: %v", err)
	}
}

func TestDeleteRemovesRoot(t *testing.T) {
	p := newPreparer(t)
	root, _, err := p.Prepare(bg, template(t), "s")
	must(t, err)
	must(t, p.Delete(bg, root))
	if _, err := os.Lstat(root); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("root still there: %v", err)
	}
	assertNoTemp(t, p.Roots)
}

func TestArchiveKeepsTreeInTarZstAndRemovesRoot(t *testing.T) {
	p := newPreparer(t)
	root, _, err := p.Prepare(bg, template(t), "s")
	must(t, err)
	out, st, err := p.Archive(bg, root)
	must(t, err)
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o600 || !strings.HasSuffix(out, ".tar.zst") {
		t.Fatalf("archive %s: %v, %v", out, fi, err)
	}
	if _, err := os.Lstat(root); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("root still there after Archive: %v", err)
	}
	hdrs := readArchive(t, out)
	if h := hdrs["usr/bin/sh"]; h == nil || h.Typeflag != tar.TypeLink || h.Linkname != "usr/bin/busybox" {
		t.Errorf("usr/bin/sh: %+v, want a hard link to usr/bin/busybox", h)
	}
	if h := hdrs["dev/null"]; h == nil || h.Typeflag != tar.TypeChar || h.Devmajor != 1 || h.Devminor != 3 {
		t.Errorf("dev/null: %+v", h)
	}
	if h := hdrs["owned"]; h == nil || h.Uid != 1234 || h.PAXRecords["SCHILY.xattr.user.ferry"] != "kept" {
		t.Errorf("owned: %+v", h)
	}
	if h := hdrs["escape-abs"]; h == nil || h.Linkname != "/etc/shadow" {
		t.Errorf("escape-abs: %+v", h)
	}
	if st.Files != 4 || st.HardLinks != 1 {
		t.Errorf("stats %+v", st)
	}
	assertNoTemp(t, p.Archives)
}

func readArchive(t *testing.T, p string) map[string]*tar.Header {
	t.Helper()
	f, err := os.Open(p)
	must(t, err)
	defer f.Close()
	zr, err := zstd.NewReader(f)
	must(t, err)
	defer zr.Close()
	tr := tar.NewReader(zr)
	out := map[string]*tar.Header{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		must(t, err)
		out[strings.TrimSuffix(h.Name, "/")] = h
	}
}

func assertNoTemp(t *testing.T, dir string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("leftover %s in %s", e.Name(), dir)
		}
	}
}
