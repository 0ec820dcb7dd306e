package initrd

import (
	"bufio"
	"compress/bzip2"
	"compress/gzip"
	"errors"
	"fmt"
	"io"

	"github.com/ulikunitz/xz/lzma"
)

// stream is one decompressed segment. After Read returned io.EOF, end
// returns the file offset just past the compressed bytes the decoder used,
// which is where the kernel continues with the next segment.
type stream interface {
	io.Reader
	end() int64
}

// maxLzmaDict bounds the dictionary an lzma header may ask for (xz -9 uses
// 64 MiB), so a hostile header cannot make us allocate gigabytes.
const maxLzmaDict = 64 << 20

// openStream starts decoding the segment with compression c at off.
func openStream(c Compression, r io.ReaderAt, off, size, maxOut int64) (stream, error) {
	switch c {
	case Gzip:
		return openGzip(r, off, size)
	case Bzip2:
		return openBzip2(r, off, size), nil
	case Lzma:
		return openLzma(r, off, size)
	case XZ:
		return openXZ(r, off, size)
	case Zstd:
		return openZstd(r, off, size, maxOut)
	case LZ4:
		return openLZ4(r, off, size), nil
	}
	return nil, fmt.Errorf("%s decompression is not supported", c)
}

// byteCounter counts the bytes a decoder takes. Decoders that are given an
// io.ByteReader (compress/flate, compress/bzip2, ulikunitz lzma) read
// exactly the bytes they need and no further, so the count is the length
// of the compressed stream; the bufio.Reader below only saves syscalls.
type byteCounter struct {
	br *bufio.Reader
	n  int64
}

func newByteCounter(r io.ReaderAt, off, size int64) *byteCounter {
	return &byteCounter{br: bufio.NewReaderSize(io.NewSectionReader(r, off, size-off), 256<<10)}
}

func (c *byteCounter) Read(p []byte) (int, error) {
	n, err := c.br.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *byteCounter) ReadByte() (byte, error) {
	b, err := c.br.ReadByte()
	if err == nil {
		c.n++
	}
	return b, err
}

// counted is a stream whose end is the byte count taken by its decoder.
type counted struct {
	io.Reader
	off int64
	c   *byteCounter
}

func (s *counted) end() int64 { return s.off + s.c.n }

func openGzip(r io.ReaderAt, off, size int64) (stream, error) {
	c := newByteCounter(r, off, size)
	z, err := gzip.NewReader(c)
	if err != nil {
		return nil, fmt.Errorf("gzip header: %w", err)
	}
	z.Multistream(false) // the kernel stops after one member
	return &counted{Reader: z, off: off, c: c}, nil
}

func openLzma(r io.ReaderAt, off, size int64) (stream, error) {
	c := newByteCounter(r, off, size)
	z, err := lzma.ReaderConfig{DictCap: maxLzmaDict}.NewReader(c)
	if err != nil {
		return nil, fmt.Errorf("lzma header: %w", err)
	}
	return &counted{Reader: z, off: off, c: c}, nil
}

// bzip2Stream adapts compress/bzip2, which after a stream's end reads two
// more bytes looking for a concatenated "BZ" stream.
type bzip2Stream struct {
	z    io.Reader
	r    io.ReaderAt
	c    *byteCounter
	off  int64
	size int64
	done int64 // compressed bytes of the finished stream
}

func openBzip2(r io.ReaderAt, off, size int64) stream {
	c := newByteCounter(r, off, size)
	return &bzip2Stream{z: bzip2.NewReader(c), r: r, c: c, off: off, size: size}
}

func (s *bzip2Stream) Read(p []byte) (int, error) {
	n, err := s.z.Read(p)
	switch {
	case err == io.EOF:
		s.done = s.c.n
	case err != nil && err.Error() == "bzip2 data invalid: bad magic value in continuation file":
		// The stream ended and two bytes of what follows were read.
		s.done, err = s.c.n-2, io.EOF
	case errors.Is(err, io.ErrUnexpectedEOF) && s.off+s.c.n == s.size && s.lastByteZero():
		// The stream ended and one zero byte of padding was read.
		s.done, err = s.c.n-1, io.EOF
	}
	return n, err
}

// lastByteZero reports whether the file's last byte, which the decoder
// took while looking for another stream, is zero padding.
func (s *bzip2Stream) lastByteZero() bool {
	var b [1]byte
	_, err := s.r.ReadAt(b[:], s.size-1)
	return err == nil && b[0] == 0
}

func (s *bzip2Stream) end() int64 { return s.off + s.done }
