package initrd

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// layOut places parts as kexec_load's segments would: each on a page
// boundary, zeros between.
func layOut(parts [][]byte) []byte {
	var b []byte
	for i, p := range parts {
		b = append(b, p...)
		if i < len(parts)-1 {
			b = append(b, make([]byte, alignUpInt(len(b), PageSize)-len(b))...)
		}
	}
	return b
}

// tree is every path under dir with its mode and contents.
func tree(t *testing.T, dir string) map[string]string {
	m := map[string]string{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(dir, p)
		info, _ := d.Info()
		v := info.Mode().String()
		if d.Type().IsRegular() {
			b, _ := os.ReadFile(p)
			v += " " + string(b)
		}
		if d.Type()&fs.ModeSymlink != 0 {
			l, _ := os.Readlink(p)
			v += " -> " + l
		}
		m[rel] = v
		return nil
	})
	return m
}

func extractBytes(t *testing.T, img []byte) map[string]string {
	t.Helper()
	dir := t.TempDir()
	if _, err := Extract(writeImage(t, img), dir); err != nil {
		t.Fatal(err)
	}
	return tree(t, dir)
}

// PatchInPlace laid out in pages unpacks to exactly what Patch writes,
// for a big file of any length, after a compressed image and in front
// of an lz4-legacy one, and only bigData's last partial page is copied.
func TestPatchInPlaceUnpacksLikePatch(t *testing.T) {
	plain := earlyPlusZstd(t)
	withLZ4 := append(pad4(earlyPlusZstd(t)), compress(t, LZ4, gnuCpio(t, makeTree(t, "late", 4)))...)
	for _, in := range [][]byte{plain, withLZ4} {
		for _, size := range []int{0, 1, PageSize - 1, PageSize, 3*PageSize + 123} {
			big := bytes.Repeat([]byte("ferry!"), size/6+1)[:size]
			small := []File{
				{Path: "/ferry/bin/init", Link: "ferry"},
				{Path: "/ferry/state/settings.json", Mode: 0o600, Data: []byte(`{"a":1}`)},
			}
			all := append([]File{{Path: "/ferry/bin/ferry", Mode: 0o755, Data: big}}, small...)
			outPath := filepath.Join(t.TempDir(), "out.img")
			rep, err := Patch(writeImage(t, in), outPath, all, PatchOptions{})
			if err != nil {
				t.Fatal(err)
			}
			patched, _ := os.ReadFile(outPath)

			parts, irep, err := PatchInPlace(in, "in.img", small, File{Path: "/ferry/bin/ferry", Mode: 0o755}, big)
			if err != nil {
				t.Fatal(err)
			}
			img := layOut(parts)
			if irep.OutSize != int64(len(img)) || irep.BeforeCompressed != rep.BeforeCompressed {
				t.Errorf("size %d: report %+v for %d bytes, Patch's %+v", size, irep, len(img), rep)
			}
			if len(parts[0]) > 0 && &parts[0][0] != &in[0] {
				t.Errorf("size %d: initrd(B) was copied", size)
			}
			// parts: [B], head, big's pages, tail[, the rest of B].
			if body := parts[2]; len(body) != size&^(PageSize-1) || (len(body) > 0 && &body[0] != &big[0]) {
				t.Errorf("size %d: big's pages are not passed through as they are", size)
			}
			got, want := extractBytes(t, img), extractBytes(t, patched)
			if len(got) != len(want) {
				t.Errorf("size %d: %d paths, Patch gives %d", size, len(got), len(want))
			}
			for p, v := range want {
				if got[p] != v {
					t.Errorf("size %d: %s is %.40q, Patch gives %.40q", size, p, got[p], v)
				}
			}
		}
	}
}

func TestPatchInPlaceRefuses(t *testing.T) {
	in := earlyPlusZstd(t)
	for _, tc := range []struct {
		in    []byte
		files []File
		big   File
		want  string
	}{
		{make([]byte, 64), nil, File{Path: "f", Mode: 0o755}, "no initramfs segment"},
		{in, []File{{Path: "ferry/f", Data: []byte("x")}}, File{Path: "/ferry/f", Mode: 0o755}, `"ferry/f" is also among the other files`},
		{in, nil, File{Path: "f", Mode: 0o755, Src: "/bin/true"}, "want a regular file given by its bytes alone"},
		{in, nil, File{Path: "../f", Mode: 0o755}, `".." component`},
	} {
		if _, _, err := PatchInPlace(tc.in, "in.img", tc.files, tc.big, []byte("x")); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("got %v, want %q", err, tc.want)
		}
	}
}
