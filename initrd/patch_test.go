package initrd

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeImage(t *testing.T, img []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "in.img")
	if err := os.WriteFile(p, img, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

var patchFiles = []File{
	{Path: "/ferry/bin/ferry", Mode: 0o755, Data: []byte("binary")},
	{Path: "/ferry/bin/init", Link: "ferry"},
	{Path: "/ferry/state/settings.json", Mode: 0o600, Data: []byte(`{"a":1}`)},
}

// earlyPlusZstd is a microcode-style uncompressed segment and a zstd one.
func earlyPlusZstd(t *testing.T) []byte {
	early := archiveOf(t, []File{{Path: "kernel/x86/microcode/GenuineIntel.bin", Data: []byte("ucode")}})
	return append(early, compress(t, Zstd, gnuCpio(t, makeTree(t, "main", 10)))...)
}

func TestPatchKeepsOriginalBytes(t *testing.T) {
	for _, c := range []Compression{None, Gzip, LZ4} {
		in := earlyPlusZstd(t)
		inPath := writeImage(t, in)
		outPath := filepath.Join(t.TempDir(), "out.img")
		rep, err := Patch(inPath, outPath, patchFiles, PatchOptions{Compression: c})
		if err != nil {
			t.Fatal(err)
		}
		out, _ := os.ReadFile(outPath)
		if !bytes.Equal(out[:len(in)], in) || rep.BeforeCompressed {
			t.Fatalf("%s: original bytes changed or segment misplaced: %+v", c, rep)
		}
		if rep.SegmentOffset%4 != 0 || rep.OutSize != int64(len(out)) {
			t.Fatalf("%s: report %+v, file %d bytes", c, rep, len(out))
		}
		segs, names, err := scanBytes("out.img", out)
		if err != nil {
			t.Fatal(err)
		}
		last := segs[len(segs)-1]
		if len(segs) != 3 || last.Compression != c || last.Offset != rep.SegmentOffset {
			t.Fatalf("%s: segments %+v", c, segs)
		}
		if !strings.Contains(strings.Join(names, " "), "2:ferry/state/settings.json") {
			t.Errorf("%s: new files missing: %v", c, names)
		}
	}
}

func TestPatchPutsSegmentBeforeLz4(t *testing.T) {
	in := append(pad4(earlyPlusZstd(t)), compress(t, LZ4, gnuCpio(t, makeTree(t, "late", 4)))...)
	inPath := writeImage(t, in)
	outPath := filepath.Join(t.TempDir(), "out.img")
	rep, err := Patch(inPath, outPath, patchFiles, PatchOptions{Compression: Gzip})
	if err != nil {
		t.Fatal(err)
	}
	early := int64(len(archiveOf(t, []File{{Path: "kernel/x86/microcode/GenuineIntel.bin", Data: []byte("ucode")}})))
	if !rep.BeforeCompressed || rep.Compression != None || rep.SegmentOffset != early {
		t.Fatalf("report %+v, want an uncompressed segment at %#x", rep, early)
	}
	out, _ := os.ReadFile(outPath)
	segs, _, err := scanBytes("out.img", out)
	if err != nil {
		t.Fatal(err)
	}
	kinds := []Compression{None, None, Zstd, LZ4}
	for i, s := range segs {
		if s.Compression != kinds[i] {
			t.Fatalf("segments %+v, want kinds %v", segs, kinds)
		}
	}
	end := rep.SegmentOffset + rep.SegmentLength
	if !bytes.Equal(out[:early], in[:early]) || !bytes.Equal(out[end:], in[early:]) {
		t.Fatal("original bytes were not kept around the new segment")
	}
	if !strings.Contains(rep.String(), "before the first compressed segment") {
		t.Errorf("report does not say where: %s", rep)
	}
}

func TestPatchLeavesNoOutputOnFailure(t *testing.T) {
	inPath := writeImage(t, earlyPlusZstd(t))
	dir := t.TempDir()
	outPath := filepath.Join(dir, "out.img")
	bad := []File{{Path: "ok", Data: []byte("x")}, {Path: "missing", Src: filepath.Join(dir, "nope")}}
	if _, err := Patch(inPath, outPath, bad, PatchOptions{}); err == nil {
		t.Fatal("patch with a missing source succeeded")
	}
	if _, err := Patch(inPath, outPath, []File{{Path: "../escape", Data: []byte("x")}}, PatchOptions{}); !errors.Is(err, ErrUnsafeName) {
		t.Fatalf("'..' destination: %v", err)
	}
	left, _ := os.ReadDir(dir)
	if len(left) != 0 {
		t.Fatalf("failed patches left %v", left)
	}
}

func TestPatchRefusesInputAsOutput(t *testing.T) {
	in := earlyPlusZstd(t)
	inPath := writeImage(t, in)
	link := filepath.Join(filepath.Dir(inPath), "alias.img")
	if err := os.Link(inPath, link); err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{inPath, link, filepath.Join(filepath.Dir(inPath), ".", "in.img")} {
		if _, err := Patch(inPath, out, patchFiles, PatchOptions{}); err == nil {
			t.Errorf("patch %s onto %s accepted", inPath, out)
		}
	}
	if got, _ := os.ReadFile(inPath); !bytes.Equal(got, in) {
		t.Fatal("input changed")
	}
}

func TestPatchRefusesGarbageInFrontOfCompressedData(t *testing.T) {
	in := append([]byte("JUNK"), earlyPlusZstd(t)...)
	_, err := Patch(writeImage(t, in), filepath.Join(t.TempDir(), "o"), patchFiles, PatchOptions{})
	wantErr(t, err, "in.img: at offset 0x0", "4a 55 4e 4b")
}

func TestPatchAddsHostTree(t *testing.T) {
	tree := makeTree(t, "host", 5)
	files, err := FilesFrom(filepath.Join(tree, "host"), "/opt/host")
	if err != nil {
		t.Fatal(err)
	}
	outPath := filepath.Join(t.TempDir(), "out.img")
	if _, err := Patch(writeImage(t, earlyPlusZstd(t)), outPath, files, PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	out, _ := os.ReadFile(outPath)
	got := map[string]string{}
	if _, err := Scan(bytes.NewReader(out), int64(len(out)), "out", func(_ *Segment, e *Entry, b io.Reader) error {
		d, err := io.ReadAll(b)
		got[e.Name] = string(d)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if got["opt/host/link"] != "d0/f0" || got["opt/host/d1/f4"] != strings.Repeat("host file 4\n", 29) {
		t.Fatalf("tree not added: %q %q", got["opt/host/link"], got["opt/host/d1/f4"])
	}
}

// TestPatchLz4SegmentDecodesWithLz4Tool checks our lz4-legacy output with
// the reference tool, whose format the kernel's unlz4 shares.
func TestPatchLz4SegmentDecodesWithLz4Tool(t *testing.T) {
	outPath := filepath.Join(t.TempDir(), "out.img")
	rep, err := Patch(writeImage(t, earlyPlusZstd(t)), outPath, patchFiles, PatchOptions{Compression: LZ4})
	if err != nil {
		t.Fatal(err)
	}
	out, _ := os.ReadFile(outPath)
	arc := run(t, out[rep.SegmentOffset:], "", "lz4", "-d", "-c")
	list := string(run(t, arc, "", "cpio", "-t", "--quiet"))
	if !strings.Contains(list, "ferry/state/settings.json") || !strings.Contains(list, "ferry/bin/init") {
		t.Fatalf("lz4 -d | cpio -t: %s", list)
	}
}

func TestScanBzip2FollowedByShortPadding(t *testing.T) {
	bz := compress(t, Bzip2, gnuCpio(t, makeTree(t, "b", 3)))
	for pad := 1; pad <= 3; pad++ {
		img := append(append([]byte{}, bz...), make([]byte, pad)...)
		segs, _, err := scanBytes("bz.img", img)
		if err != nil || len(segs) != 1 || segs[0].Length != int64(len(bz)) {
			t.Errorf("pad %d: %+v %v", pad, segs, err)
		}
	}
}

func TestPatchRefusesEmptyAndPaddingOnlyInput(t *testing.T) {
	for _, in := range [][]byte{nil, make([]byte, 64)} {
		dir := t.TempDir()
		_, err := Patch(writeImage(t, in), filepath.Join(dir, "o"), patchFiles, PatchOptions{})
		wantErr(t, err, "in.img: at offset 0x0: no initramfs segment")
		if left, _ := os.ReadDir(dir); len(left) != 0 {
			t.Fatalf("left %v", left)
		}
	}
}

func TestPatchOutputIsPrivate(t *testing.T) {
	out := filepath.Join(t.TempDir(), "o")
	if _, err := Patch(writeImage(t, earlyPlusZstd(t)), out, patchFiles, PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(out); st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600: the segment holds the lease key", st.Mode())
	}
}
