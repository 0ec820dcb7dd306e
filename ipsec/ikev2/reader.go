package ikev2

import (
	"encoding/binary"
	"fmt"
)

// reader walks a byte slice with a sticky error that carries the payload
// type and the absolute offset of the failing field.
type reader struct {
	b    []byte
	off  int
	base int
	pt   PayloadType
	err  error
	up   *reader // parent, which receives the first error too
}

func newReader(b []byte, base int, pt PayloadType) *reader {
	return &reader{b: b, base: base, pt: pt}
}

func (r *reader) failf(field, format string, args ...any) {
	if r.err != nil {
		return
	}
	r.err = &DecodeError{Payload: r.pt, Offset: r.base + r.off, Field: field, Reason: fmt.Sprintf(format, args...)}
	for p := r.up; p != nil && p.err == nil; p = p.up {
		p.err = r.err
	}
}

func (r *reader) left() int { return len(r.b) - r.off }

func (r *reader) bytes(n int, field string) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || r.left() < n {
		r.failf(field, "needs %d bytes, %d left", n, r.left())
		return nil
	}
	v := r.b[r.off : r.off+n]
	r.off += n
	return v
}

// clone copies n bytes so decoded payloads never alias the input buffer.
func (r *reader) clone(n int, field string) []byte {
	v := r.bytes(n, field)
	if len(v) == 0 {
		return nil
	}
	return append([]byte{}, v...)
}

func (r *reader) rest(field string) []byte { return r.clone(r.left(), field) }

func (r *reader) u8(field string) uint8 {
	v := r.bytes(1, field)
	if v == nil {
		return 0
	}
	return v[0]
}

func (r *reader) u16(field string) uint16 {
	v := r.bytes(2, field)
	if v == nil {
		return 0
	}
	return binary.BigEndian.Uint16(v)
}

func (r *reader) u32(field string) uint32 {
	v := r.bytes(4, field)
	if v == nil {
		return 0
	}
	return binary.BigEndian.Uint32(v)
}

// done reports the sticky error, or trailing bytes after the last field.
func (r *reader) done() error {
	if r.err == nil && r.left() != 0 {
		r.failf("end", "%d trailing bytes", r.left())
	}
	return r.err
}

// sub returns a reader over the next n bytes and advances past them.
func (r *reader) sub(n int, field string) *reader {
	start := r.off
	v := r.bytes(n, field)
	s := &reader{b: v, base: r.base + start, pt: r.pt, err: r.err, up: r}
	return s
}

func appendU16(b []byte, v uint16) []byte { return binary.BigEndian.AppendUint16(b, v) }
func appendU32(b []byte, v uint32) []byte { return binary.BigEndian.AppendUint32(b, v) }

// putLen writes the 16-bit length of b[at:] at b[at+off:], checking it fits.
func putLen16(b []byte, at, off int, what string) error {
	n := len(b) - at
	if n > 0xffff {
		return fmt.Errorf("ikev2: encode %s: length %d exceeds 65535", what, n)
	}
	binary.BigEndian.PutUint16(b[at+off:], uint16(n))
	return nil
}
