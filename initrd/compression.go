package initrd

import (
	"bytes"
	"fmt"
)

// Compression names how a segment is stored.
type Compression int

// The compressions the kernel can unpack (lzo is recognised, not decoded).
const (
	None Compression = iota
	Gzip
	Bzip2
	Lzma
	XZ
	LZO
	LZ4
	Zstd
)

func (c Compression) String() string {
	switch c {
	case None:
		return "none"
	case Gzip:
		return "gzip"
	case Bzip2:
		return "bzip2"
	case Lzma:
		return "lzma"
	case XZ:
		return "xz"
	case LZO:
		return "lzo"
	case LZ4:
		return "lz4"
	case Zstd:
		return "zstd"
	}
	return fmt.Sprintf("compression(%d)", int(c))
}

// ParseCompression parses a name as printed by String.
func ParseCompression(s string) (Compression, error) {
	for c := None; c <= Zstd; c++ {
		if c.String() == s {
			return c, nil
		}
	}
	return None, fmt.Errorf("unknown compression %q", s)
}

// Magic numbers, as the kernel's decompress_method matches them.
const (
	magicGzip     = "\x1f\x8b"
	magicGzipOld  = "\x1f\x9e"
	magicBzip2    = "BZh"
	magicLzma     = "\x5d\x00\x00"
	magicXZ       = "\xfd7zXZ\x00"
	magicLZO      = "\x89LZO"
	magicLZ4      = "\x02\x21\x4c\x18"
	magicZstd     = "\x28\xb5\x2f\xfd"
	maxMagicBytes = 6
)

// detect names the compression whose magic starts b; ok is false when b
// starts with no known magic. An uncompressed archive starts with '0'.
func detect(b []byte) (Compression, bool) {
	switch {
	case len(b) > 0 && b[0] == '0':
		return None, true
	case hasMagic(b, magicGzip), hasMagic(b, magicGzipOld):
		return Gzip, true
	case hasMagic(b, magicBzip2):
		return Bzip2, true
	case hasMagic(b, magicLzma):
		return Lzma, true
	case hasMagic(b, magicXZ):
		return XZ, true
	case hasMagic(b, magicLZO):
		return LZO, true
	case hasMagic(b, magicLZ4):
		return LZ4, true
	case hasMagic(b, magicZstd):
		return Zstd, true
	}
	return None, false
}

func hasMagic(b []byte, m string) bool { return bytes.HasPrefix(b, []byte(m)) }
