package initrd

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestScanReadsEveryCompression(t *testing.T) {
	for _, c := range []Compression{None, Gzip, Bzip2, Lzma, XZ, Zstd, LZ4} {
		t.Run(c.String(), func(t *testing.T) {
			arc := gnuCpio(t, makeTree(t, "x", 20))
			img := compress(t, c, arc)
			segs, names, err := scanBytes("img", img)
			if err != nil {
				t.Fatal(err)
			}
			if len(segs) != 1 || segs[0].Compression != c || len(bytes.TrimRight(img[segs[0].Length:], "\x00")) != 0 {
				t.Fatalf("segments %+v, want one %s of %d bytes", segs, c, len(img))
			}
			if c != None && segs[0].Length != int64(len(img)) {
				t.Fatalf("length %d, want %d", segs[0].Length, len(img))
			}
			if len(bytes.TrimRight(arc[segs[0].DataSize:], "\x00")) != 0 || len(names) != segs[0].Entries {
				t.Fatalf("data %d want %d; names %d entries %d", segs[0].DataSize, len(arc), len(names), segs[0].Entries)
			}
		})
	}
}

// TestScanFindsExactSegmentEnds concatenates one segment of every kind, the
// way distributions and ferry stack them, and checks each boundary: a codec
// that read ahead would shift every later segment.
func TestScanFindsExactSegmentEnds(t *testing.T) {
	kinds := []Compression{None, Gzip, None, Bzip2, Lzma, XZ, Zstd, Gzip, LZ4}
	var img []byte
	var offs []int64
	for i, c := range kinds {
		if c == None {
			img = pad4(img)
		}
		offs = append(offs, int64(len(img)))
		img = append(img, compress(t, c, gnuCpio(t, makeTree(t, string(rune('a'+i)), 5+i)))...)
		if c == Bzip2 {
			img = append(img, 0, 0, 0) // padding the kernel skips
		}
	}
	segs, names, err := scanBytes("stack.img", img)
	if err != nil {
		t.Fatal(err)
	}
	if len(segs) != len(kinds) {
		t.Fatalf("got %d segments, want %d", len(segs), len(kinds))
	}
	for i, s := range segs {
		if s.Offset != offs[i] || s.Compression != kinds[i] {
			t.Errorf("segment %d: %s at %#x, want %s at %#x", i, s.Compression, s.Offset, kinds[i], offs[i])
		}
	}
	if !strings.Contains(strings.Join(names, " "), "8:i/link") {
		t.Errorf("names of the last segment missing: %v", names[len(names)-3:])
	}
}

func TestScanRejectsGarbageBetweenSegments(t *testing.T) {
	a := gnuCpio(t, makeTree(t, "a", 3))
	img := append(append(append([]byte{}, a...), "JUNK"...), a...)
	_, _, err := scanBytes("g.img", img)
	wantErr(t, err, "g.img: at offset", "garbage 4a 55 4e 4b")
}

func TestScanRejectsDataAfterLz4(t *testing.T) {
	a := gnuCpio(t, makeTree(t, "a", 3))
	img := pad4(compress(t, LZ4, a))
	img = append(img, a...)
	_, _, err := scanBytes("l.img", img)
	wantErr(t, err, "segment 0 (lz4) at offset 0x0", "lz4 must be the last segment")
}

func TestScanRejectsUnalignedUncompressedSegment(t *testing.T) {
	a := gnuCpio(t, makeTree(t, "a", 3))
	img := append(compress(t, Gzip, a), 0)
	for len(img)%4 != 2 {
		img = append(img, 0)
	}
	img = append(img, a...)
	_, _, err := scanBytes("u.img", img)
	wantErr(t, err, "uncompressed segment is not 4-byte aligned", "invalid magic")
}

func TestScanRejectsEmptyAndPaddingOnly(t *testing.T) {
	_, _, err := scanBytes("e.img", nil)
	wantErr(t, err, "e.img: at offset 0x0: empty file")
	_, _, err = scanBytes("p.img", make([]byte, 512))
	wantErr(t, err, "only 512 bytes of zero padding")
}

func TestScanRejectsTruncatedArchive(t *testing.T) {
	a := bytes.TrimRight(gnuCpio(t, makeTree(t, "a", 4)), "\x00")
	for _, cut := range []int{50, 112 + 20, len(a) - 200} {
		_, _, err := scanBytes("t.img", a[:cut])
		if !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrNoTrailer) {
			t.Errorf("cut at %d: %v, want truncated", cut, err)
		}
		wantErr(t, err, "t.img: segment 0 (none) at offset 0x0: cpio entry")
	}
}

func TestScanRejectsArchiveWithoutTrailer(t *testing.T) {
	var b bytes.Buffer
	if _, err := WriteArchive(&b, []File{{Path: "a", Data: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	noTrailer := b.Bytes()[:b.Len()-124]
	_, _, err := scanBytes("n.img", compress(t, Zstd, noTrailer))
	if !errors.Is(err, ErrNoTrailer) {
		t.Fatalf("got %v, want ErrNoTrailer", err)
	}
	wantErr(t, err, "n.img: segment 0 (zstd) at offset 0x0", "no TRAILER!!!")
}

func TestScanRejectsCorruptCompressedSegment(t *testing.T) {
	a := gnuCpio(t, makeTree(t, "a", 30))
	for _, c := range []Compression{Gzip, Bzip2, Lzma, XZ, Zstd, LZ4} {
		img := compress(t, c, a)
		bad := append([]byte{}, img...)
		for i := len(bad) / 2; i < len(bad)/2+8; i++ {
			bad[i] ^= 0x5a
		}
		if _, _, err := scanBytes("c.img", bad); err == nil {
			t.Errorf("%s: corrupt stream accepted", c)
		} else {
			wantErr(t, err, "c.img: segment 0 ("+c.String()+") at offset 0x0")
		}
	}
}

func TestScanRejectsCompressedStreamEndingEarly(t *testing.T) {
	a := gnuCpio(t, makeTree(t, "a", 30))
	for _, c := range []Compression{Gzip, Bzip2, Lzma, XZ, Zstd, LZ4} {
		img := compress(t, c, a)
		_, _, err := scanBytes("s.img", img[:len(img)*2/3])
		if err == nil {
			t.Errorf("%s: truncated stream accepted", c)
			continue
		}
		wantErr(t, err, "s.img: segment 0 ("+c.String()+")")
	}
}

func TestScanCapsDecompressedSize(t *testing.T) {
	a := gnuCpio(t, makeTree(t, "a", 30))
	img := compress(t, Gzip, a)
	s := &Scanner{Name: "cap.img", MaxSegment: 1024}
	_, err := s.Scan(bytes.NewReader(img), int64(len(img)), nil)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("got %v, want ErrTooLarge", err)
	}
}

func TestScanGivesEntryBodies(t *testing.T) {
	img := compress(t, Gzip, gnuCpio(t, makeTree(t, "b", 4)))
	got := map[string]string{}
	_, err := Scan(bytes.NewReader(img), int64(len(img)), "b.img", func(s *Segment, e *Entry, body io.Reader) error {
		data, err := io.ReadAll(body)
		got[e.Name] = string(data)
		if e.Link != "" && e.Link != string(data) {
			t.Errorf("%s: link %q body %q", e.Name, e.Link, data)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if got["b/d0/f3"] != strings.Repeat("b file 3\n", 22) || got["b/link"] != "d0/f0" {
		t.Fatalf("bodies: %q %q", got["b/d0/f3"], got["b/link"])
	}
}

func wantErr(t *testing.T, err error, subs ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one containing %q", subs)
	}
	for _, s := range subs {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not contain %q", err, s)
		}
	}
}
