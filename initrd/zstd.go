package initrd

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
)

// openZstd walks the zstd frames at off by their headers and block headers
// to find where they end, then decodes exactly those bytes.
func openZstd(r io.ReaderAt, off, size int64, maxOut int64) (stream, error) {
	end, err := zstdFramesEnd(r, off, size)
	if err != nil {
		return nil, err
	}
	d, err := zstd.NewReader(io.NewSectionReader(r, off, end-off),
		zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderMaxMemory(uint64(min(maxOut, 1<<40))),
		zstd.WithDecoderMaxWindow(uint64(max(min(maxOut, 1<<30), 8<<20))))
	if err != nil {
		return nil, fmt.Errorf("zstd: %w", err)
	}
	return &zstdStream{d: d, at: end}, nil
}

type zstdStream struct {
	d  *zstd.Decoder
	at int64
}

func (s *zstdStream) Read(p []byte) (int, error) {
	n, err := s.d.Read(p)
	if err != nil {
		s.d.Close()
	}
	return n, err
}

func (s *zstdStream) end() int64 { return s.at }

// zstdFramesEnd returns the offset past the run of zstd and skippable frames
// starting at off (the decoder, like zstd -d, reads consecutive frames as
// one stream).
func zstdFramesEnd(r io.ReaderAt, off, size int64) (int64, error) {
	fr := &frameReader{br: bufio.NewReaderSize(io.NewSectionReader(r, off, size-off), 64<<10), pos: off}
	for first := true; ; first = false {
		m, err := fr.peek(4)
		if err != nil && !first {
			return fr.pos, nil
		}
		if err != nil {
			return 0, err
		}
		magic := binary.LittleEndian.Uint32(m)
		switch {
		case magic == 0xfd2fb528:
			err = fr.frame()
		case magic&0xfffffff0 == 0x184d2a50:
			err = fr.skippable()
		case first:
			return 0, errors.New("no zstd frame magic")
		default:
			return fr.pos, nil
		}
		if err != nil {
			return 0, err
		}
	}
}

// frameReader walks frame structure without decoding.
type frameReader struct {
	br  *bufio.Reader
	pos int64
}

func (f *frameReader) peek(n int) ([]byte, error) {
	b, err := f.br.Peek(n)
	if err != nil {
		return nil, fmt.Errorf("zstd frame structure at %#x: %w", f.pos, ErrTruncated)
	}
	return b, nil
}

func (f *frameReader) skip(n int64) error {
	for n > 0 {
		k := int(min(n, 1<<30))
		d, err := f.br.Discard(k)
		f.pos += int64(d)
		n -= int64(d)
		if err != nil {
			return fmt.Errorf("zstd frame structure at %#x: %w", f.pos, ErrTruncated)
		}
	}
	return nil
}

func (f *frameReader) skippable() error {
	h, err := f.peek(8)
	if err != nil {
		return err
	}
	return f.skip(8 + int64(binary.LittleEndian.Uint32(h[4:])))
}

// frame skips one frame: header, blocks up to the last, then the checksum.
func (f *frameReader) frame() error {
	h, err := f.peek(5)
	if err != nil {
		return err
	}
	fhd := h[4]
	if fhd&0x08 != 0 {
		return fmt.Errorf("zstd frame at %#x: reserved header bit set", f.pos)
	}
	single := fhd&0x20 != 0
	n := int64(5) + [4]int64{0, 1, 2, 4}[fhd&3] + [4]int64{0, 2, 4, 8}[fhd>>6]
	if !single {
		n++ // window descriptor
	} else if fhd>>6 == 0 {
		n++ // one-byte content size
	}
	if err := f.skip(n); err != nil {
		return err
	}
	if err := f.blocks(); err != nil {
		return err
	}
	if fhd&0x04 != 0 {
		return f.skip(4)
	}
	return nil
}

func (f *frameReader) blocks() error {
	for {
		b, err := f.peek(3)
		if err != nil {
			return err
		}
		bh := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16
		size := int64(bh >> 3)
		switch (bh >> 1) & 3 {
		case 1: // RLE: one byte repeated size times
			size = 1
		case 3:
			return fmt.Errorf("zstd block at %#x: reserved block type", f.pos)
		}
		if size > 128<<10 {
			return fmt.Errorf("zstd block at %#x: size %d exceeds 128 KiB", f.pos, size)
		}
		if err := f.skip(3 + size); err != nil {
			return err
		}
		if bh&1 != 0 {
			return nil
		}
	}
}
