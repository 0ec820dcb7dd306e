package initrd

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/pierrec/lz4/v4"
)

// The kernel's lz4 legacy format (lib/decompress_unlz4.c): a 4-byte magic,
// then chunks of a 4-byte little-endian compressed size and an lz4 block
// of at most 8 MiB decompressed. There is no end marker: the kernel reads
// chunks to the end of its input, so an lz4 segment must be the last one.
const lz4ChunkMax = 8 << 20

type lz4Stream struct {
	r    io.ReaderAt
	br   *bufio.Reader
	pos  int64 // file offset of the next unread byte
	size int64
	src  []byte
	dst  []byte
	out  []byte // decoded bytes not yet returned
}

func openLZ4(r io.ReaderAt, off, size int64) stream {
	br := bufio.NewReaderSize(io.NewSectionReader(r, off, size-off), 256<<10)
	return &lz4Stream{r: r, br: br, pos: off, size: size}
}

func (s *lz4Stream) end() int64 { return s.size }

func (s *lz4Stream) Read(p []byte) (int, error) {
	for len(s.out) == 0 {
		if s.pos == s.size {
			return 0, io.EOF
		}
		if err := s.chunk(); err != nil {
			return 0, err
		}
	}
	n := copy(p, s.out)
	s.out = s.out[n:]
	return n, nil
}

// chunk decodes the next chunk (or skips a repeated magic) into s.out.
func (s *lz4Stream) chunk() error {
	at := s.pos
	h, err := s.br.Peek(4)
	if err != nil {
		return s.bad(at, fmt.Errorf("%d stray bytes: %w", s.size-at, io.ErrUnexpectedEOF))
	}
	n := binary.LittleEndian.Uint32(h)
	s.discard(4)
	if n == binary.LittleEndian.Uint32([]byte(magicLZ4)) {
		return nil
	}
	bound := int64(lz4.CompressBlockBound(lz4ChunkMax))
	if n == 0 || int64(n) > bound {
		return s.bad(at, fmt.Errorf("chunk size %#x is not in 1..%#x", n, bound))
	}
	if left := s.size - s.pos; int64(n) > left {
		return s.bad(at, fmt.Errorf("chunk of %#x bytes, only %#x left: %w", n, left, io.ErrUnexpectedEOF))
	}
	if cap(s.src) < int(n) {
		s.src = make([]byte, n)
	}
	src := s.src[:n]
	if _, err := io.ReadFull(s.br, src); err != nil {
		return s.bad(at, ErrTruncated)
	}
	s.pos += int64(n)
	if s.dst == nil {
		s.dst = make([]byte, lz4ChunkMax)
	}
	m, err := lz4.UncompressBlock(src, s.dst)
	if err != nil {
		return s.bad(at, err)
	}
	s.out = s.dst[:m]
	return nil
}

func (s *lz4Stream) discard(n int) {
	d, _ := s.br.Discard(n)
	s.pos += int64(d)
}

// bad explains a chunk that does not decode. If it looks like the start of
// another segment, say so: the kernel fails such images ("Decoding failed").
func (s *lz4Stream) bad(at int64, err error) error {
	var b [maxMagicBytes]byte
	n, _ := s.r.ReadAt(b[:], at)
	if c, ok := detect(b[:n]); ok || (n > 0 && b[0] == 0) {
		what := "zero padding"
		if ok {
			what = "a " + c.String() + " segment"
		}
		return fmt.Errorf("%s at %#x follows the lz4-legacy data; the kernel's unlz4 reads to the end of the image and fails (\"Decoding failed\"): lz4 must be the last segment", what, at)
	}
	return fmt.Errorf("lz4 chunk at %#x: %w", at, err)
}
