package initrd

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Reader streams newc entries from one (decompressed) data stream. It counts
// every byte it consumes so that errors and entries carry exact offsets, and
// it bounds every size by what the stream may still hold.
type Reader struct {
	br    *bufio.Reader
	pos   int64  // bytes consumed from the stream
	limit int64  // the stream holds at most this many bytes
	isCap bool   // limit is a decompression cap, not the end of the input
	index int    // next entry number
	cur   *Entry // entry whose body is being read
	body  body
	buf   [headerLen]byte
}

// NewReader reads newc entries from r, which holds at most limit bytes.
func NewReader(r io.Reader, limit int64) *Reader {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 64<<10)
	}
	return &Reader{br: br, limit: limit}
}

// Pos returns the number of bytes consumed so far.
func (r *Reader) Pos() int64 { return r.pos }

// errNoData is returned by Next when the stream ends cleanly before a header.
var errNoData = errors.New("no more data")

// Next returns the next entry and a reader for its body. The body is valid
// until the next call; unread body bytes are skipped (and checksummed) then.
// Next returns the trailer entry like any other; callers stop there.
func (r *Reader) Next() (*Entry, io.Reader, error) {
	if err := r.finishBody(); err != nil {
		return nil, nil, err
	}
	e := &Entry{Index: r.index, Offset: r.pos}
	r.index++
	r.cur = e
	if err := r.readHeader(e); err != nil {
		return nil, nil, err
	}
	r.body = body{r: r, left: e.Size, crc: e.Magic == magicCRC && e.Mode&sIFMT == sIFREG, want: e.Check}
	if e.Mode&sIFMT == sIFLNK {
		if err := r.readLink(e); err != nil {
			return nil, nil, r.wrap(e, err)
		}
		return e, strings.NewReader(e.Link), nil
	}
	return e, &r.body, nil
}

func (r *Reader) readHeader(e *Entry) error {
	n, err := io.ReadFull(r.br, r.buf[:])
	r.pos += int64(n)
	var de *decodeError
	switch {
	case err == io.EOF:
		return errNoData
	case errors.As(err, &de):
		return r.wrap(e, err)
	case err != nil:
		return r.wrap(e, fmt.Errorf("header needs %d bytes, stream ends after %d: %w", headerLen, n, ErrTruncated))
	}
	nameSize, err := parseHeader(r.buf[:], e)
	if err != nil {
		return r.wrap(e, err)
	}
	if err := r.readName(e, nameSize); err != nil {
		return r.wrap(e, err)
	}
	if err := validType(e); err != nil {
		return r.wrap(e, err)
	}
	if left := r.limit - r.pos; e.Size > left && r.isCap {
		return r.wrap(e, fmt.Errorf("file size %#x exceeds the %#x bytes left under the decompression cap of %d: %w", e.Size, left, r.limit, ErrTooLarge))
	} else if e.Size > left {
		return r.wrap(e, fmt.Errorf("file size %#x exceeds the %#x bytes left: %w", e.Size, left, ErrTruncated))
	}
	return nil
}

func (r *Reader) readName(e *Entry, size uint32) error {
	if size == 0 || size > maxNameLen+1 {
		return fmt.Errorf("name size %d not in 1..%d: %w", size, maxNameLen+1, ErrTooLarge)
	}
	name := make([]byte, int(size))
	n, err := io.ReadFull(r.br, name)
	r.pos += int64(n)
	if err != nil {
		return shortRead(err, fmt.Sprintf("name needs %d bytes, stream ends after %d", size, n))
	}
	if name[size-1] != 0 {
		return errors.New("name has no NUL")
	}
	name = name[:size-1]
	if i := strings.IndexByte(string(name), 0); i >= 0 {
		return fmt.Errorf("name has a NUL at byte %d of %d", i, size-1)
	}
	e.Name = string(name)
	if e.Name == "" {
		return errors.New("empty name")
	}
	return r.skipPad()
}

// readLink reads a symlink's target, which is its body.
func (r *Reader) readLink(e *Entry) error {
	t := make([]byte, int(e.Size))
	if _, err := io.ReadFull(&r.body, t); err != nil {
		return fmt.Errorf("symlink target: %w", err)
	}
	if strings.IndexByte(string(t), 0) >= 0 {
		return errors.New("symlink target has a NUL")
	}
	e.Link = string(t)
	return r.finishBody()
}

// skipPad consumes the padding that aligns the stream to 4 bytes.
func (r *Reader) skipPad() error {
	pad := int(align4(r.pos) - r.pos)
	n, err := r.br.Discard(pad)
	r.pos += int64(n)
	if err != nil {
		return shortRead(err, fmt.Sprintf("padding at %#x", r.pos))
	}
	return nil
}

// finishBody skips what the caller left of the current body, checks the
// 070702 checksum (of regular files only, like the kernel and GNU cpio)
// and skips the body's padding.
func (r *Reader) finishBody() error {
	b := &r.body
	if b.r == nil {
		return nil
	}
	if b.left > 0 {
		if _, err := io.Copy(io.Discard, b); err != nil {
			b.r = nil
			return r.wrap(r.cur, err)
		}
	}
	b.r = nil
	if b.err != nil {
		return r.wrap(r.cur, b.err)
	}
	if b.crc && b.sum != b.want {
		return r.wrap(r.cur, fmt.Errorf("body ending at %#x: checksum %#08x, header says %#08x", r.pos, b.sum, b.want))
	}
	return r.wrap(r.cur, r.skipPad())
}

func (r *Reader) wrap(e *Entry, err error) error {
	if err == nil {
		return nil
	}
	var ee *entryError
	if errors.As(err, &ee) {
		return err
	}
	return &entryError{index: e.Index, name: e.Name, offset: e.Offset, err: err}
}

// body reads one entry's data, counting and checksumming it.
type body struct {
	r    *Reader
	left int64
	crc  bool
	sum  uint32
	want uint32
	err  error
}

func (b *body) Read(p []byte) (int, error) {
	if b.r == nil || b.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.br.Read(p)
	b.left -= int64(n)
	b.r.pos += int64(n)
	if b.crc {
		for _, c := range p[:n] {
			b.sum += uint32(c)
		}
	}
	if err == io.EOF && b.left > 0 {
		err = shortRead(io.ErrUnexpectedEOF, fmt.Sprintf("body ends at %#x with %d bytes missing", b.r.pos, b.left))
	}
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

// skipZeros consumes zero bytes after a trailer. It reports whether another
// archive follows (the next byte is '0'), and fails on anything else.
func (r *Reader) skipZeros() (more bool, err error) {
	for {
		c, err := r.br.ReadByte()
		if err == io.EOF {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if c != 0 {
			r.br.UnreadByte()
			if c != '0' {
				return false, fmt.Errorf("junk byte %#02x at %#x after TRAILER!!!", c, r.pos)
			}
			if r.pos%4 != 0 {
				return false, fmt.Errorf("archive at %#x after TRAILER!!! is not 4-byte aligned (kernel: broken padding)", r.pos)
			}
			return true, nil
		}
		r.pos++
		if r.pos > r.limit {
			return false, fmt.Errorf("zero padding past %#x: %w", r.limit, ErrTooLarge)
		}
	}
}

// shortRead explains a read that came up short: a decompressor failure is
// passed on as is, anything else means the data ended.
func shortRead(err error, what string) error {
	var de *decodeError
	if errors.As(err, &de) {
		return err
	}
	return fmt.Errorf("%s: %w", what, ErrTruncated)
}
