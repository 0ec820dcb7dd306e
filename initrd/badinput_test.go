package initrd

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestReaderRejectsBadHeaders(t *testing.T) {
	good := rawArchive(rawEntry("usr/bin/x", sIFREG|0o755, "data"))
	sizeField := 6 + 6*8 // filesize is the 7th field
	nameSizeField := 6 + 11*8
	cases := []struct {
		name string
		mut  func([]byte) []byte
		want []string
	}{
		{"non-hex size", func(b []byte) []byte { copy(b[sizeField:], "0000004G"); return b },
			[]string{`cpio entry 0 at 0x0`, `field filesize: "0000004G" is not 8 hex digits`}},
		{"negative size", func(b []byte) []byte { copy(b[sizeField:], "-0000001"); return b },
			[]string{`field filesize: "-0000001"`}},
		{"huge size", func(b []byte) []byte { copy(b[sizeField:], "FFFFFFFF"); return b },
			[]string{`cpio entry 0 "usr/bin/x" at 0x0: file size 0xffffffff exceeds`, "truncated"}},
		{"name without NUL", func(b []byte) []byte { b[headerLen+9] = 'y'; return b },
			[]string{"cpio entry 0 at 0x0: name has no NUL"}},
		{"name too long", func(b []byte) []byte { copy(b[nameSizeField:], "00002000"); return b },
			[]string{"name size 8192 not in 1..4097"}},
		{"bad magic", func(b []byte) []byte { copy(b, "070707"); return b },
			[]string{`bad magic "070707"`}},
		{"truncated name", func(b []byte) []byte { return b[:headerLen+4] },
			[]string{"name needs 10 bytes, stream ends after 4", "truncated"}},
		{"truncated body", func(b []byte) []byte { return b[:headerLen+10+2] },
			[]string{`cpio entry 0 "usr/bin/x"`, "truncated"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			img := c.mut(append([]byte{}, good...))
			_, _, err := scanBytes("bad.img", img)
			wantErr(t, err, append([]string{"bad.img: segment 0 (none) at offset 0x0: "}, c.want...)...)
		})
	}
}

func TestReaderRejectsBadHeadersInCompressedSegments(t *testing.T) {
	img := rawArchive(rawEntry("usr/bin/x", sIFREG|0o755, "data"))
	img[headerLen+9] = 'y'
	z := append(pad4(compress(t, Gzip, rawArchive(rawEntry("a", sIFREG, "")))), compress(t, Zstd, img)...)
	_, _, err := scanBytes("initrd-b.img", z)
	wantErr(t, err, "initrd-b.img: segment 1 (zstd) at offset 0x", "cpio entry 0 at 0x0: name has no NUL")
}

func TestScanRejectsSymlinkTargetTooLong(t *testing.T) {
	img := rawArchive(rawEntry("l", sIFLNK|0o777, strings.Repeat("a", 5000)))
	_, _, err := scanBytes("s.img", img)
	wantErr(t, err, "symlink target length 5000")
}

func TestParseHex8(t *testing.T) {
	for in, want := range map[string]uint32{"00000000": 0, "0000abcD": 0xabcd, "FFFFFFFF": 0xffffffff} {
		if v, err := parseHex8([]byte(in)); err != nil || v != want {
			t.Errorf("%s: %x %v", in, v, err)
		}
	}
	for _, in := range []string{" 0000001", "0x000001", "+0000001", "0000000g"} {
		if _, err := parseHex8([]byte(in)); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

func TestReaderLimitsDecompressedEntrySize(t *testing.T) {
	r := NewReader(bytes.NewReader(rawArchive(rawEntry("f", sIFREG|0o644, "0123456789"))), 64)
	r.isCap = true
	_, _, err := r.Next()
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("got %v", err)
	}
}
