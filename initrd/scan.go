package initrd

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// DefaultMaxSegment caps one segment's decompressed size unless a Scanner
// says otherwise.
const DefaultMaxSegment = 2 << 30

// Segment is one archive-holding part of an initramfs file.
type Segment struct {
	Index       int
	Offset      int64 // first byte of the segment in the file
	Length      int64 // bytes the segment occupies in the file
	Padding     int64 // zero bytes skipped just before the segment
	Compression Compression
	Entries     int   // cpio entries, not counting trailers
	Archives    int   // cpio archives (TRAILER!!! entries) in the segment
	DataSize    int64 // decompressed bytes
}

// EntryFunc is called for every entry except trailers. body yields the
// entry's data (a symlink's target for symlinks) until fn returns.
type EntryFunc func(seg *Segment, e *Entry, body io.Reader) error

// Scanner walks an initramfs file the way the kernel unpacks it.
type Scanner struct {
	Name       string // file name used in errors
	MaxSegment int64  // cap on one segment's decompressed bytes; 0 means DefaultMaxSegment
}

// Scan walks the size bytes of r, named name in errors, with the default
// limits. fn may be nil.
func Scan(r io.ReaderAt, size int64, name string, fn EntryFunc) ([]Segment, error) {
	return (&Scanner{Name: name}).Scan(r, size, fn)
}

// Scan walks every segment and every entry of the size bytes of r. It
// returns the segments read so far with the first error, an *Error.
func (s *Scanner) Scan(r io.ReaderAt, size int64, fn EntryFunc) ([]Segment, error) {
	var segs []Segment
	off, afterPlain := int64(0), false
	for {
		next, err := skipZeroBytes(r, off, size)
		if err != nil {
			return segs, s.fileErr(off, err)
		}
		seg := Segment{Index: len(segs), Offset: next, Padding: next - off}
		if off = next; off == size {
			break
		}
		if err := s.startSegment(r, size, &seg, afterPlain); err != nil {
			return segs, err
		}
		end, err := s.segment(r, size, &seg, fn)
		if err != nil {
			return segs, s.segErr(&seg, err)
		}
		seg.Length = end - seg.Offset
		segs = append(segs, seg)
		off, afterPlain = end, seg.Compression == None
	}
	if len(segs) == 0 {
		if size == 0 {
			return nil, s.fileErr(0, errors.New("empty file: no initramfs segment"))
		}
		return nil, s.fileErr(0, fmt.Errorf("only %d bytes of zero padding: no initramfs segment", size))
	}
	return segs, nil
}

// startSegment identifies the segment at seg.Offset and applies the
// kernel's alignment rules.
func (s *Scanner) startSegment(r io.ReaderAt, size int64, seg *Segment, afterPlain bool) error {
	var head [maxMagicBytes]byte
	n, _ := r.ReadAt(head[:min(int64(len(head)), size-seg.Offset)], seg.Offset)
	c, ok := detect(head[:n])
	switch {
	case !ok:
		where := "at the start of the file"
		if seg.Index > 0 {
			where = fmt.Sprintf("after segment %d", seg.Index-1)
		}
		return s.fileErr(seg.Offset, fmt.Errorf("garbage % x %s: not a cpio header, compression magic or zero padding (kernel: invalid magic at start of compressed archive)", head[:n], where))
	case afterPlain && seg.Offset%4 != 0:
		return s.fileErr(seg.Offset, fmt.Errorf("%s segment after an uncompressed segment is not 4-byte aligned (kernel: broken padding)", c))
	case c == None && seg.Offset%4 != 0:
		return s.fileErr(seg.Offset, errors.New("uncompressed segment is not 4-byte aligned (kernel: invalid magic at start of compressed archive)"))
	}
	seg.Compression = c
	return nil
}

// segment reads one segment and returns the file offset just past it.
func (s *Scanner) segment(r io.ReaderAt, size int64, seg *Segment, fn EntryFunc) (int64, error) {
	if seg.Compression == None {
		rest := size - seg.Offset
		rd := NewReader(bufio.NewReaderSize(io.NewSectionReader(r, seg.Offset, rest), 256<<10), rest)
		err := readArchive(rd, seg, fn)
		seg.DataSize = rd.Pos()
		return seg.Offset + rd.Pos(), err
	}
	max := s.MaxSegment
	if max <= 0 {
		max = DefaultMaxSegment
	}
	st, err := openStream(seg.Compression, r, seg.Offset, size, max)
	if err != nil {
		return 0, err
	}
	rd := NewReader(&decoded{r: st, c: seg.Compression, left: max, cap: max}, max)
	rd.isCap = true
	for more := true; more; {
		if err := readArchive(rd, seg, fn); err != nil {
			return 0, err
		}
		if more, err = rd.skipZeros(); err != nil {
			var de *decodeError
			if errors.As(err, &de) {
				return 0, fmt.Errorf("after TRAILER!!! at data offset %#x: %w", rd.Pos(), err)
			}
			return 0, fmt.Errorf("decompressed data: %w (kernel: junk within compressed archive)", err)
		}
	}
	seg.DataSize = rd.Pos()
	return st.end(), nil
}

// readArchive reads entries up to and including a trailer.
func readArchive(rd *Reader, seg *Segment, fn EntryFunc) error {
	for {
		e, body, err := rd.Next()
		if errors.Is(err, errNoData) {
			return fmt.Errorf("archive ends at data offset %#x after %d entries: %w", rd.Pos(), seg.Entries, ErrNoTrailer)
		}
		if err != nil {
			return err
		}
		if e.IsTrailer() {
			seg.Archives++
			return rd.finishBody()
		}
		seg.Entries++
		if fn != nil {
			if err := fn(seg, e, body); err != nil {
				return rd.wrap(e, err)
			}
		}
	}
}

// skipZeroBytes returns the offset of the first non-zero byte at or after
// off, or size.
func skipZeroBytes(r io.ReaderAt, off, size int64) (int64, error) {
	buf := make([]byte, 64<<10)
	for off < size {
		n, err := r.ReadAt(buf[:min(int64(len(buf)), size-off)], off)
		for i := 0; i < n; i++ {
			if buf[i] != 0 {
				return off + int64(i), nil
			}
		}
		off += int64(n)
		if err != nil && err != io.EOF {
			return off, err
		}
		if n == 0 {
			return off, fmt.Errorf("file shorter than its size %d: %w", size, ErrTruncated)
		}
	}
	return size, nil
}

func (s *Scanner) fileErr(off int64, err error) error {
	return &Error{File: s.Name, Segment: -1, Offset: off, Entry: -1, Err: err}
}

func (s *Scanner) segErr(seg *Segment, err error) error {
	e := &Error{File: s.Name, Segment: seg.Index, Compression: seg.Compression, Offset: seg.Offset, Entry: -1, Err: err}
	var ee *entryError
	if errors.As(err, &ee) {
		e.Entry, e.EntryName, e.EntryOffset, e.Err = ee.index, ee.name, ee.offset, ee.err
	}
	return e
}

// decoded wraps a decompressor: it caps the output and names the codec in
// its errors, so a corrupt stream is not mistaken for a short archive.
type decoded struct {
	r    io.Reader
	c    Compression
	left int64
	cap  int64
}

// decodeError is a failure of the decompressor itself.
type decodeError struct {
	c   Compression
	err error
}

func (e *decodeError) Error() string {
	if errors.Is(e.err, io.ErrUnexpectedEOF) {
		if e.err == io.ErrUnexpectedEOF {
			return fmt.Sprintf("%s data ends early (truncated compressed stream)", e.c)
		}
		return fmt.Sprintf("%s data ends early (truncated compressed stream): %v", e.c, e.err)
	}
	return fmt.Sprintf("%s data corrupt: %v", e.c, e.err)
}

func (e *decodeError) Unwrap() error { return e.err }

func (d *decoded) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	d.left -= int64(n)
	if d.left < 0 {
		return n, fmt.Errorf("decompressed data exceeds the cap of %d bytes: %w", d.cap, ErrTooLarge)
	}
	if err != nil && err != io.EOF {
		err = &decodeError{c: d.c, err: err}
	}
	return n, err
}
