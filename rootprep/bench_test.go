package rootprep

import (
	"fmt"
	"path/filepath"
	"testing"
)

// BenchmarkPrepareTenThousandFiles copies a 10,000-file tree (on tmpfs when
// available) per iteration.
func BenchmarkPrepareTenThousandFiles(b *testing.B) {
	base := memDir(b)
	tpl := bigTree(b, base, 100, 100)
	p, err := New(filepath.Join(base, "roots"), filepath.Join(base, "archives"), nil)
	if err != nil {
		b.Fatal(err)
	}
	i := 0
	for b.Loop() {
		root, _, err := p.Prepare(bg, tpl, fmt.Sprintf("r%d", i))
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		p.Delete(bg, root)
		b.StartTimer()
		i++
	}
}

// BenchmarkArchiveTenThousandFiles packs a 10,000-file root into tar.zst.
func BenchmarkArchiveTenThousandFiles(b *testing.B) {
	base := memDir(b)
	tpl := bigTree(b, base, 100, 100)
	p, err := New(filepath.Join(base, "roots"), filepath.Join(base, "archives"), nil)
	if err != nil {
		b.Fatal(err)
	}
	i := 0
	for b.Loop() {
		b.StopTimer()
		root, _, err := p.Prepare(bg, tpl, fmt.Sprintf("r%d", i))
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, _, err := p.Archive(bg, root); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
