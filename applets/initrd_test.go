package applets

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"ferry/initrd"
)

// Image A carries the binary once: /init is a link to bin/ferry, and the
// zstd image is read back entry by entry.
func TestInitrdBuildCarriesTheBinaryOnce(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(exe)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "a.img")
	if code, _, errb := run("ferry", "initrd", "build", "-o", out, "--compress", "zstd"); code != 0 {
		t.Fatalf("initrd build: exit %d: %s", code, errb)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	copies, initLink := 0, ""
	segs, err := initrd.Scan(f, fi.Size(), out, func(_ *initrd.Segment, e *initrd.Entry, _ io.Reader) error {
		if e.Size == st.Size() && e.Link == "" {
			copies++
		}
		if e.Name == "init" {
			initLink = e.Link
		}
		return nil
	})
	if err != nil || len(segs) != 1 || segs[0].Compression != initrd.Zstd {
		t.Fatalf("scan: %v, segments %+v", err, segs)
	}
	if copies != 1 || initLink != "bin/ferry" {
		t.Fatalf("binary stored %d times, /init -> %q; want once and bin/ferry", copies, initLink)
	}
	if fi.Size() >= st.Size() {
		t.Errorf("image %d bytes, not below the %d-byte binary it carries", fi.Size(), st.Size())
	}
}
