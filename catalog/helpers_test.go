package catalog

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"testing"

	"ferry/initrd"
	"ferry/kexec/kexectest"
)

const testRelease = "6.1.0-56-amd64"

// fakeKernel writes the setup sectors of a bzImage whose version string
// starts with release.
func fakeKernel(t *testing.T, dir, release string) string {
	t.Helper()
	b := kexectest.BzImage(0x020f, release+" (debian-kernel@lists.debian.org) #1 SMP")
	p := filepath.Join(dir, "vmlinuz-"+release)
	writeFile(t, p, b)
	return p
}

// fakeModule builds a relocatable x86-64 ELF object whose only section of
// note is .modinfo with entries.
func fakeModule(entries ...string) []byte {
	var modinfo []byte
	for _, e := range entries {
		modinfo = append(append(modinfo, e...), 0)
	}
	shstr := []byte("\x00.modinfo\x00.shstrtab\x00")
	modOff, strOff := 64, 64+len(modinfo)
	shOff := (strOff + len(shstr) + 7) &^ 7
	out := make([]byte, shOff+3*64)
	le := binary.LittleEndian
	copy(out, "\x7fELF\x02\x01\x01")
	le.PutUint16(out[16:], 1)
	le.PutUint16(out[18:], 62)
	le.PutUint32(out[20:], 1)
	le.PutUint64(out[40:], uint64(shOff))
	le.PutUint16(out[52:], 64)
	le.PutUint16(out[58:], 64)
	le.PutUint16(out[60:], 3)
	le.PutUint16(out[62:], 2)
	copy(out[modOff:], modinfo)
	copy(out[strOff:], shstr)
	sh := func(i int, name, typ uint32, off, size int) {
		b := out[shOff+i*64:]
		le.PutUint32(b[0:], name)
		le.PutUint32(b[4:], typ)
		le.PutUint64(b[24:], uint64(off))
		le.PutUint64(b[32:], uint64(size))
		le.PutUint64(b[48:], 1)
	}
	sh(1, 1, 1, modOff, len(modinfo))
	sh(2, 10, 3, strOff, len(shstr))
	return out
}

// modTree writes a modules tree for release: name -> depends.
func modTree(t *testing.T, dir, release string, mods map[string]string) string {
	t.Helper()
	root := filepath.Join(dir, "lib/modules", release)
	for name, deps := range mods {
		data := fakeModule("license=GPL", "depends="+deps, "name="+name, "vermagic="+release+" SMP mod_unload ")
		writeFile(t, filepath.Join(root, "kernel", name+".ko"), data)
	}
	return root
}

// fakeInitrd writes an uncompressed initramfs holding files (path -> data).
func fakeInitrd(t *testing.T, dir string, files map[string]string) string {
	t.Helper()
	var fs []initrd.File
	for p, d := range files {
		fs = append(fs, initrd.File{Path: p, Mode: 0o644, Data: []byte(d)})
	}
	var buf bytes.Buffer
	if _, err := initrd.WriteArchive(&buf, fs); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "initrd-b.img")
	writeFile(t, p, buf.Bytes())
	return p
}

func writeFile(t *testing.T, p string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func openDir(t *testing.T, modules ...string) *Dir {
	t.Helper()
	d, err := Open(filepath.Join(t.TempDir(), "catalog"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if modules != nil {
		d.Modules = modules
	}
	return d
}

func bundleEntries(t *testing.T, p string) []string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	var names []string
	segs, err := initrd.Scan(f, st.Size(), p, func(_ *initrd.Segment, e *initrd.Entry, _ io.Reader) error {
		if e.FileMode().IsRegular() {
			names = append(names, e.Name)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(segs) != 1 || segs[0].Compression != initrd.None {
		t.Fatalf("bundle has segments %+v, want one uncompressed", segs)
	}
	return names
}

var bg = context.Background()
