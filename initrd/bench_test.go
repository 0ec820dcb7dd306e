package initrd

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// benchImage is a ~100 MB zstd initramfs made once per test binary run:
// small config-like files, compressible text and incompressible "binaries".
type benchImage struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func (bi *benchImage) get(b *testing.B) string {
	b.Helper()
	needTool(b, "zstd")
	needTool(b, "cpio")
	bi.once.Do(func() { bi.dir, bi.path, bi.err = makeBenchImage() })
	if bi.err != nil {
		b.Fatal(bi.err)
	}
	return bi.path
}

func makeBenchImage() (dir, img string, err error) {
	dir, err = os.MkdirTemp("", "ferry-initrd-bench-")
	if err != nil {
		return "", "", err
	}
	tree := filepath.Join(dir, "tree")
	rng := rand.New(rand.NewChaCha8([32]byte{1}))
	words := strings.Fields("kernel module firmware init mount device driver network config lib usr bin sbin etc systemd udev rules")
	for i := 0; i < 2600; i++ {
		var data []byte
		switch {
		case i%4 == 0: // binaries: random
			data = make([]byte, 100<<10+rng.IntN(100<<10))
			for j := range data {
				data[j] = byte(rng.Uint32())
			}
		case i%4 == 1: // text, compressible
			var sb strings.Builder
			for sb.Len() < 60<<10+rng.IntN(60<<10) {
				sb.WriteString(words[rng.IntN(len(words))])
				sb.WriteByte(" \n"[rng.IntN(2)])
			}
			data = []byte(sb.String())
		default: // small config files
			data = []byte(fmt.Sprintf("option%d=%d\n", i, rng.Int()))
		}
		p := filepath.Join(tree, fmt.Sprintf("usr/lib/d%02d/f%04d", i%40, i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return dir, "", err
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return dir, "", err
		}
	}
	img = filepath.Join(dir, "initrd.img")
	cmd := exec.Command("sh", "-c", "find . | cpio -o -H newc --quiet | zstd -q -o "+img)
	cmd.Dir = tree
	if out, err := cmd.CombinedOutput(); err != nil {
		return dir, "", fmt.Errorf("%v: %s", err, out)
	}
	return dir, img, os.RemoveAll(tree)
}

// bench is shared by the benchmarks below and removed by TestMain.
var bench benchImage

func TestMain(m *testing.M) {
	code := m.Run()
	if bench.dir != "" {
		os.RemoveAll(bench.dir)
	}
	os.Exit(code)
}

// benchAdditions is what the agent appends: a ~10 MB binary and state.
func benchAdditions() []File {
	bin := make([]byte, 10<<20)
	rng := rand.New(rand.NewChaCha8([32]byte{2}))
	for i := range bin {
		bin[i] = byte(rng.Uint32())
	}
	return []File{
		{Path: "ferry/bin/ferry", Mode: 0o755, Data: bin},
		{Path: "ferry/bin/init", Link: "ferry"},
		{Path: "ferry/state/settings.json", Mode: 0o600, Data: []byte(`{"kernel":{}}`)},
	}
}

func reportMBps(b *testing.B, size int64) {
	b.ReportMetric(float64(size)*float64(b.N)/1e6/b.Elapsed().Seconds(), "MB/s")
}

func imageSize(b *testing.B, p string) int64 {
	st, err := os.Stat(p)
	if err != nil {
		b.Fatal(err)
	}
	return st.Size()
}

func BenchmarkPatch100MB(b *testing.B) {
	img := bench.get(b)
	files := benchAdditions()
	out := filepath.Join(b.TempDir(), "out.img")
	b.ResetTimer()
	for b.Loop() {
		if _, err := Patch(img, out, files, PatchOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	reportMBps(b, imageSize(b, img))
}

func BenchmarkCopy100MB(b *testing.B) {
	img := bench.get(b)
	out := filepath.Join(b.TempDir(), "out.img")
	b.ResetTimer()
	for b.Loop() {
		if err := copyFile(img, out); err != nil {
			b.Fatal(err)
		}
	}
	reportMBps(b, imageSize(b, img))
}

// copyFile is the baseline: io.Copy between files, synced like Patch's output.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// BenchmarkUnpackRepack100MB is what patching costs without appending:
// decompress and unpack, add the files, pack and compress again.
func BenchmarkUnpackRepack100MB(b *testing.B) {
	img := bench.get(b)
	add := filepath.Join(b.TempDir(), "ferry")
	if err := os.WriteFile(add, benchAdditions()[0].Data, 0o755); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		dir := b.TempDir()
		script := fmt.Sprintf(`set -e; mkdir -p x/ferry/bin && cd x && zstd -d -q -c %s | cpio -i -d -m --quiet
cp %s ferry/bin/ferry && find . | cpio -o -H newc --quiet | zstd -q -o ../out.img`, img, add)
		cmd := exec.Command("sh", "-c", script)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("%v: %s", err, out)
		}
	}
	reportMBps(b, imageSize(b, img))
}
