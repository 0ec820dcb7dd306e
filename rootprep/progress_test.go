package rootprep

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// bigTemplate is a template holding one file of n bytes (not sparse:
// every byte written) and a small one.
func bigTemplate(t *testing.T, n int) string {
	t.Helper()
	tmpl := filepath.Join(t.TempDir(), "tmpl")
	must(t, os.MkdirAll(filepath.Join(tmpl, "etc"), 0o755))
	must(t, os.WriteFile(filepath.Join(tmpl, "etc", "hostname"), []byte("lent\n"), 0o644))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	must(t, os.WriteFile(filepath.Join(tmpl, "big.bin"), b, 0o644))
	return tmpl
}

// A copy reports its bytes while a large file is being copied, not only
// at the end, and the template's size is what the bytes end at.
func TestPrepareWithReportsBytesAsTheyGo(t *testing.T) {
	p := newPreparer(t)
	tmpl := bigTemplate(t, 3*copyChunk/2)
	total, err := TemplateBytes(tmpl)
	must(t, err)
	if want := int64(3*copyChunk/2 + 5); total != want {
		t.Fatalf("TemplateBytes = %d, want %d", total, want)
	}
	var seen []int64
	_, st, err := p.PrepareWith(bg, tmpl, "r1", func(s Stats) { seen = append(seen, s.Bytes) })
	must(t, err)
	if st.Bytes != total {
		t.Fatalf("copied %d bytes, want %d", st.Bytes, total)
	}
	partway := false
	for _, b := range seen {
		partway = partway || b > 0 && b < total
	}
	// On a file system with reflinks the whole file is one clone: no
	// partial figure to report.
	if !partway && st.ReflinkBytes == 0 {
		t.Fatalf("progress saw %v: no figure between 0 and %d while the big file was copied", seen, total)
	}
}

// Cancelled in the middle of a large file, a copy stops, returns the
// context's error and leaves neither the root nor its temporary copy.
func TestPrepareCancelledMidFileLeavesNothing(t *testing.T) {
	p := newPreparer(t)
	tmpl := bigTemplate(t, 4*copyChunk)
	ctx, cancel := context.WithCancel(bg)
	_, st, err := p.PrepareWith(ctx, tmpl, "r1", func(s Stats) {
		if s.Bytes > 0 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Prepare cancelled mid-file: %v (copied %d bytes), want context.Canceled", err, st.Bytes)
	}
	if st.ReflinkBytes == 0 && st.Bytes >= 4*copyChunk {
		t.Fatalf("the cancelled copy went on to the end (%d bytes)", st.Bytes)
	}
	left, _ := os.ReadDir(p.Roots)
	if len(left) != 0 {
		t.Fatalf("after a cancelled copy the roots directory holds %v", left)
	}
}

// What a killed process left of a copy (a hidden temporary directory) is
// removed by RemovePartial; a whole root of that name, and others' partial
// copies, stay.
func TestRemovePartialRemovesOnlyThatRootsLeftovers(t *testing.T) {
	p := newPreparer(t)
	for _, d := range []string{".r1.tmp-123", ".r10.tmp-9", "r1"} {
		must(t, os.MkdirAll(filepath.Join(p.Roots, d, "etc"), 0o755))
	}
	must(t, p.RemovePartial("r1"))
	for d, want := range map[string]bool{".r1.tmp-123": false, ".r10.tmp-9": true, "r1": true} {
		if _, err := os.Stat(filepath.Join(p.Roots, d)); (err == nil) != want {
			t.Errorf("%s exists: %v, want %v", d, err == nil, want)
		}
	}
	if err := p.RemovePartial("../x"); err == nil {
		t.Fatal("RemovePartial accepted the name ../x")
	}
}
