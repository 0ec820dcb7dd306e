package initrd

import (
	"bytes"
	"math/rand"
	"testing"
)

func TestContainsAtFindsPatternAcrossPartBoundaries(t *testing.T) {
	data := make([]byte, 5<<20+7)
	for _, at := range []int{0, 1<<20 - 2, 2<<20 + 1, len(data) - 4} {
		d := append([]byte{}, data...)
		copy(d[at:], magicLZ4)
		ok, err := containsAt(bytes.NewReader(d), 0, int64(len(d)), []byte(magicLZ4))
		if err != nil || !ok {
			t.Errorf("magic at %#x not found: %v", at, err)
		}
		if ok, _ := containsAt(bytes.NewReader(d), int64(at+1), int64(len(d)), []byte(magicLZ4)); ok {
			t.Errorf("magic at %#x found when searching after it", at)
		}
	}
	if ok, _ := containsAt(bytes.NewReader(data), 0, int64(len(data)), []byte(magicLZ4)); ok {
		t.Error("found in zeros")
	}
}

func TestReadLayoutIgnoresLz4MagicInsideZstdData(t *testing.T) {
	// Incompressible data is stored as raw zstd blocks, so the magic shows
	// in the compressed bytes; walking the frames must not mistake it for
	// an lz4-legacy segment.
	body := make([]byte, 256<<10)
	rand.New(rand.NewSource(1)).Read(body)
	copy(body[100<<10:], magicLZ4)
	img := compress(t, Zstd, archiveOf(t, []File{{Path: "blob", Data: body}}))
	if !bytes.Contains(img, []byte(magicLZ4)) {
		t.Fatal("fixture: the magic did not survive compression")
	}
	l, err := ReadLayout(bytes.NewReader(img), int64(len(img)), "in.img")
	if err != nil {
		t.Fatal(err)
	}
	if l.LZ4After || l.FirstCompressed != 0 || l.Compression != Zstd {
		t.Fatalf("layout %+v, want zstd at 0 and no lz4", l)
	}
}

func TestReadLayoutFindsLz4AfterGzip(t *testing.T) {
	tree := gnuCpio(t, makeTree(t, "x", 3))
	img := append(pad4(compress(t, Gzip, tree)), compress(t, LZ4, tree)...)
	l, err := ReadLayout(bytes.NewReader(img), int64(len(img)), "in.img")
	if err != nil {
		t.Fatal(err)
	}
	if !l.LZ4After || l.Compression != Gzip {
		t.Fatalf("layout %+v, want gzip first and lz4 after", l)
	}
}
