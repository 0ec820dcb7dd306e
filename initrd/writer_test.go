package initrd

import (
	"bytes"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	gocpio "github.com/cavaliercoder/go-cpio"
)

func sampleFiles(t *testing.T) []File {
	src := filepath.Join(t.TempDir(), "src")
	if err := os.WriteFile(src, []byte("from a host file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return []File{
		{Path: "/usr/bin/tool", Mode: 0o755, Src: src},
		{Path: "etc/motd", Mode: 0o644, Data: []byte("hello\n")},
		{Path: "bin/sh", Link: "../usr/bin/tool"},
		{Path: "dev/console", Mode: fs.ModeDevice | fs.ModeCharDevice | 0o600, Major: 5, Minor: 1},
		{Path: "empty", Mode: 0o600},
	}
}

func archiveOf(t *testing.T, files []File) []byte {
	t.Helper()
	var b bytes.Buffer
	n, err := WriteArchive(&b, files)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(b.Len()) || n%4 != 0 {
		t.Fatalf("WriteArchive says %d bytes, wrote %d", n, b.Len())
	}
	return b.Bytes()
}

// readAll reads one archive with our reader, trailer included.
func readAll(t *testing.T, arc []byte) []*Entry {
	t.Helper()
	r := NewReader(bytes.NewReader(arc), int64(len(arc)))
	var out []*Entry
	for {
		e, _, err := r.Next()
		if err != nil {
			t.Fatalf("after %d entries: %v", len(out), err)
		}
		out = append(out, e)
		if e.IsTrailer() {
			return out
		}
	}
}

func TestWriteArchiveOnlyWritesNewcMagic(t *testing.T) {
	arc := archiveOf(t, sampleFiles(t))
	for _, e := range readAll(t, arc) {
		if e.Magic != magicNewc || string(arc[e.Offset:e.Offset+6]) != "070701" {
			t.Errorf("entry %q at %#x has magic %q, want 070701", e.Name, e.Offset, arc[e.Offset:e.Offset+6])
		}
	}
	if bytes.Contains(arc, []byte("070702")) {
		t.Error("archive contains a 070702 header")
	}
}

func TestWriteArchiveAddsParentsSortedAndDeterministic(t *testing.T) {
	arc := archiveOf(t, sampleFiles(t))
	var names []string
	for i, e := range readAll(t, arc) {
		if e.IsTrailer() {
			break
		}
		names = append(names, e.Name)
		if e.UID != 0 || e.GID != 0 || e.MTime != 0 || e.Ino != uint32(i+1) {
			t.Errorf("%s: uid %d gid %d mtime %d ino %d", e.Name, e.UID, e.GID, e.MTime, e.Ino)
		}
		if e.Mode&sIFMT == sIFDIR && e.Mode&0o7777 != 0o755 {
			t.Errorf("parent %s has mode %#o, want 0755", e.Name, e.Mode)
		}
	}
	want := []string{"bin", "bin/sh", "dev", "dev/console", "empty", "etc", "etc/motd", "usr", "usr/bin", "usr/bin/tool"}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Fatalf("names %v, want %v", names, want)
	}
	files := sampleFiles(t)
	for i, j := 0, len(files)-1; i < j; i, j = i+1, j-1 {
		files[i], files[j] = files[j], files[i]
	}
	if !bytes.Equal(arc, archiveOf(t, files)) {
		t.Error("same files in another order gave other bytes")
	}
}

// TestWriteArchiveReadsBackWithGoCpio uses an independent reader.
func TestWriteArchiveReadsBackWithGoCpio(t *testing.T) {
	arc := archiveOf(t, sampleFiles(t))
	r := gocpio.NewReader(bytes.NewReader(arc))
	got := map[string]string{}
	for {
		h, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(r)
		got[h.Name] = h.Mode.String() + " " + string(data) + h.Linkname
	}
	for name, want := range map[string]string{
		"usr/bin/tool": "0100755 from a host file\n",
		"etc/motd":     "0100644 hello\n",
		"bin/sh":       "0120777 ../usr/bin/tool",
		"dev/console":  "020600 ",
	} {
		if got[name] != want {
			t.Errorf("%s: go-cpio read %q, want %q", name, got[name], want)
		}
	}
}

func TestWriteArchiveListsWithGNUCpio(t *testing.T) {
	needTool(t, "cpio")
	arc := archiveOf(t, sampleFiles(t))
	cmd := exec.Command("cpio", "-itv", "--quiet")
	cmd.Stdin = bytes.NewReader(arc)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cpio -t: %v: %s", err, out)
	}
	list := string(out)
	for _, want := range []string{"crw-------   1 root     root       5,   1 Jan  1  1970 dev/console",
		"bin/sh -> ../usr/bin/tool", "drwxr-xr-x   2 root     root            0 Jan  1  1970 usr/bin",
		"-rwxr-xr-x   1 root     root           17 Jan  1  1970 usr/bin/tool"} {
		if !strings.Contains(list, want) {
			t.Errorf("cpio -tv output lacks %q:\n%s", want, list)
		}
	}
}

func TestWriteArchiveRefusesBadPaths(t *testing.T) {
	for _, p := range []string{"../x", "a/../../x", "/", "", ".", "a/\x00b"} {
		if _, err := WriteArchive(io.Discard, []File{{Path: p, Data: []byte("x")}}); err == nil {
			t.Errorf("path %q accepted", p)
		}
	}
	if _, err := WriteArchive(io.Discard, []File{{Path: "a", Data: []byte("x")}, {Path: "/a"}}); err == nil {
		t.Error("duplicate path accepted")
	}
	if _, err := WriteArchive(io.Discard, []File{{Path: "a", Data: []byte("x")}, {Path: "a/b"}}); err == nil {
		t.Error("file used as a parent directory accepted")
	}
}

func TestReaderVerifies070702Checksum(t *testing.T) {
	needTool(t, "cpio")
	dir := makeTree(t, "c", 3)
	cmd := exec.Command("sh", "-c", "find . | LC_ALL=C sort | cpio -o -H crc --quiet")
	cmd.Dir = dir
	arc, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := scanBytes("crc.img", arc); err != nil {
		t.Fatalf("valid 070702 archive: %v", err)
	}
	i := bytes.Index(arc, []byte("c file 2\n"))
	arc[i] ^= 1
	_, err = Scan(bytes.NewReader(arc), int64(len(arc)), "crc.img", func(_ *Segment, _ *Entry, b io.Reader) error {
		_, err := io.Copy(io.Discard, b)
		return err
	})
	wantErr(t, err, "crc.img: segment 0 (none)", "checksum")
}

func TestBuildIsDeterministicWithConsoleAndMountPoints(t *testing.T) {
	dir := t.TempDir()
	files := sampleFiles(t)[:2]
	for _, c := range []Compression{None, Gzip, LZ4, Zstd} {
		a, b := filepath.Join(dir, "a-"+c.String()), filepath.Join(dir, "b-"+c.String())
		if err := Build(a, files, BuildOptions{Compression: c}); err != nil {
			t.Fatal(err)
		}
		if err := Build(b, files, BuildOptions{Compression: c}); err != nil {
			t.Fatal(err)
		}
		da, _ := os.ReadFile(a)
		db, _ := os.ReadFile(b)
		if !bytes.Equal(da, db) {
			t.Fatalf("%s: two builds differ", c)
		}
		got := map[string]string{}
		segs, err := Scan(bytes.NewReader(da), int64(len(da)), a, func(_ *Segment, e *Entry, _ io.Reader) error {
			got[e.Name] = e.ModeString()
			if e.Name == "dev/console" && (e.RdevMajor != 5 || e.RdevMinor != 1) {
				t.Errorf("console is %d,%d", e.RdevMajor, e.RdevMinor)
			}
			return nil
		})
		if err != nil || len(segs) != 1 || segs[0].Compression != c {
			t.Fatalf("%s: %v %+v", c, err, segs)
		}
		var keys []string
		for k, v := range got {
			keys = append(keys, k+" "+v)
		}
		sort.Strings(keys)
		for _, want := range []string{"dev/console crw-------", "proc drwxr-xr-x", "sys drwxr-xr-x", "run drwxr-xr-x", "tmp drwxrwxrwt"} {
			if !strings.Contains(strings.Join(keys, "\n"), want) {
				t.Errorf("%s: missing %q in %v", c, want, keys)
			}
		}
	}
}

// The kernel unpacks zstd with the reference decoder's code: the zstd
// tool must read what Build writes, byte for byte the archive.
func TestBuildZstdReadsWithReferenceZstd(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "a.img")
	files := sampleFiles(t)[:2]
	if err := Build(img, files, BuildOptions{Compression: Zstd}); err != nil {
		t.Fatal(err)
	}
	raw := filepath.Join(dir, "raw.img")
	if err := Build(raw, files, BuildOptions{}); err != nil {
		t.Fatal(err)
	}
	z, _ := os.ReadFile(img)
	want, _ := os.ReadFile(raw)
	if got := run(t, z, "", "zstd", "-d", "-q", "-c"); !bytes.Equal(got, want) {
		t.Fatalf("zstd -d gives %d bytes, want the %d of the uncompressed build", len(got), len(want))
	}
}
