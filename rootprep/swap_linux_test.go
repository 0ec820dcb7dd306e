package rootprep

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

const outsideSecret = "OUTSIDE-SECRET: the borrower host's, not the root's"

// leaked is the secret's first bytes: an archiver that sized the entry
// from the root's own file still copies that many.
const leaked = "OUTSIDE"

// outside makes a file and a directory outside any root, holding the
// secret a hostile writer would like rootprep to copy or archive.
func outside(t *testing.T) (file, dir string) {
	t.Helper()
	base := t.TempDir()
	file, dir = filepath.Join(base, "shadow"), filepath.Join(base, "etc")
	must(t, os.WriteFile(file, []byte(outsideSecret), 0o600))
	must(t, os.MkdirAll(dir, 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "x"), []byte(outsideSecret), 0o600))
	return file, dir
}

// swapOnce replaces the entry whose path ends in name with a symlink to
// target, the first time rootprep is about to open it.
func swapOnce(t *testing.T, name, target string) func(string) {
	done := false
	return func(p string) {
		if done || !strings.HasSuffix(p, string(filepath.Separator)+name) {
			return
		}
		done = true
		must(t, os.Rename(p, p+".gone"))
		must(t, os.Symlink(target, p))
	}
}

// archiveBodies reads every regular file's bytes out of a tar.zst.
func archiveBodies(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	must(t, err)
	defer f.Close()
	zr, err := zstd.NewReader(f)
	must(t, err)
	defer zr.Close()
	var all bytes.Buffer
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return all.String()
		}
		must(t, err)
		if h.Typeflag == tar.TypeReg {
			io.Copy(&all, tr)
		}
	}
}

// Hole 8 (d) of "Trust boundaries": the lent server writes its root, so
// while a root is archived a file can become a symlink to anything on
// the borrower's host. rootprep must read nothing outside the root.
func TestArchiveFollowsNoSymlinkSwappedInForAFile(t *testing.T) {
	p := newPreparer(t)
	secret, _ := outside(t)
	root := filepath.Join(p.Roots, "server-1")
	must(t, os.MkdirAll(filepath.Join(root, "etc"), 0o755))
	must(t, os.WriteFile(filepath.Join(root, "etc", "data"), []byte("the root's own"), 0o644))
	p.beforeOpen = swapOnce(t, "data", secret)
	out, _, err := p.Archive(bg, root)
	if err == nil && strings.Contains(archiveBodies(t, out), leaked) {
		t.Fatalf("archive %s holds %s, outside the root, through etc/data swapped for a symlink", out, secret)
	}
	if err == nil {
		t.Fatalf("archive of a root whose etc/data became a symlink while archived: no error")
	}
	if !strings.Contains(err.Error(), "etc/data") {
		t.Errorf("err = %v, want one naming etc/data", err)
	}
	if _, serr := os.Stat(root); serr != nil {
		t.Errorf("root gone after a failed archive: %v", serr)
	}
	t.Logf("refused: %v", err)
}

func TestArchiveFollowsNoSymlinkSwappedInForADirectory(t *testing.T) {
	p := newPreparer(t)
	_, dir := outside(t)
	root := filepath.Join(p.Roots, "server-1")
	must(t, os.MkdirAll(filepath.Join(root, "sub"), 0o755))
	must(t, os.WriteFile(filepath.Join(root, "sub", "x"), []byte("the root's own"), 0o644))
	p.beforeOpen = swapOnce(t, "sub", dir)
	out, _, err := p.Archive(bg, root)
	if err == nil && strings.Contains(archiveBodies(t, out), leaked) {
		t.Fatalf("archive %s holds %s/x, outside the root, through sub swapped for a symlink", out, dir)
	}
	if err == nil || !strings.Contains(err.Error(), "sub") {
		t.Fatalf("archive of a root whose sub/ became a symlink while archived: %v, want an error naming sub", err)
	}
	t.Logf("refused: %v", err)
}

// The same for a template changed while it is copied into a new root.
func TestPrepareFollowsNoSymlinkSwappedIntoTheTemplate(t *testing.T) {
	for _, c := range []struct{ name, entry string }{{"file", "data"}, {"directory", "sub"}} {
		t.Run(c.name, func(t *testing.T) {
			p := newPreparer(t)
			secret, dir := outside(t)
			tpl := filepath.Join(t.TempDir(), "template")
			must(t, os.MkdirAll(filepath.Join(tpl, "sub"), 0o755))
			must(t, os.WriteFile(filepath.Join(tpl, "sub", "x"), []byte("the template's own"), 0o644))
			must(t, os.WriteFile(filepath.Join(tpl, "data"), []byte("the template's own"), 0o644))
			target := secret
			if c.entry == "sub" {
				target = dir
			}
			p.beforeOpen = swapOnce(t, c.entry, target)
			root, _, err := p.Prepare(bg, tpl, "server-1")
			if err == nil {
				b, _ := os.ReadFile(filepath.Join(root, "data"))
				x, _ := os.ReadFile(filepath.Join(root, "sub", "x"))
				if strings.Contains(string(b)+string(x), leaked) {
					t.Fatalf("new root %s holds %s, outside the template, through %s swapped for a symlink", root, target, c.entry)
				}
				t.Fatalf("prepare from a template whose %s became a symlink while copied: no error", c.entry)
			}
			if !strings.Contains(err.Error(), c.entry) {
				t.Errorf("err = %v, want one naming %s", err, c.entry)
			}
			assertNoTemp(t, p.Roots)
			t.Logf("refused: %v", err)
		})
	}
}
