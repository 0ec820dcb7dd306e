package initrd

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func needTool(t testing.TB, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s not installed: %v", name, err)
	}
}

// run runs a command with stdin and returns its stdout.
func run(t testing.TB, stdin []byte, dir, name string, args ...string) []byte {
	t.Helper()
	needTool(t, name)
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %v: %v: %s", name, args, err, errb.String())
	}
	return out.Bytes()
}

// makeTree writes n small files (and a symlink) under a new directory.
func makeTree(t testing.TB, prefix string, n int) string {
	t.Helper()
	dir := t.TempDir()
	for i := 0; i < n; i++ {
		p := filepath.Join(dir, prefix, fmt.Sprintf("d%d", i%3), fmt.Sprintf("f%d", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		data := bytes.Repeat([]byte(fmt.Sprintf("%s file %d\n", prefix, i)), i*7+1)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("d0/f0", filepath.Join(dir, prefix, "link")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// gnuCpio archives dir with GNU cpio -o -H newc.
func gnuCpio(t testing.TB, dir string) []byte {
	t.Helper()
	needTool(t, "cpio")
	cmd := exec.Command("sh", "-c", "find . | LC_ALL=C sort | cpio -o -H newc --quiet")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("cpio -o: %v", err)
	}
	return out
}

// compress runs the compressor named by c over data the way distributions
// build initramfs images.
func compress(t testing.TB, c Compression, data []byte) []byte {
	t.Helper()
	switch c {
	case None:
		return data
	case Gzip:
		return run(t, data, "", "gzip", "-9c")
	case Bzip2:
		return run(t, data, "", "bzip2", "-c")
	case Lzma:
		return run(t, data, "", "xz", "--format=lzma", "-c")
	case XZ:
		return run(t, data, "", "xz", "--check=crc32", "-c")
	case Zstd:
		return run(t, data, "", "zstd", "-q", "-c")
	case LZ4:
		return run(t, data, "", "lz4", "-l", "-q", "-c")
	}
	t.Fatalf("no compressor for %s", c)
	return nil
}

// pad4 appends zeros up to a multiple of 4.
func pad4(b []byte) []byte {
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// scanBytes scans an in-memory image and collects entry names.
func scanBytes(name string, img []byte) ([]Segment, []string, error) {
	var names []string
	segs, err := Scan(bytes.NewReader(img), int64(len(img)), name, func(s *Segment, e *Entry, body io.Reader) error {
		names = append(names, fmt.Sprintf("%d:%s", s.Index, e.Name))
		return nil
	})
	return segs, names, err
}
