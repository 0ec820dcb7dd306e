package initrd

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/ulikunitz/xz"
)

// openXZ finds the end of the xz stream at off by its footer, then decodes
// exactly that range (the decoder checks blocks, index and checksums).
func openXZ(r io.ReaderAt, off, size int64) (stream, error) {
	flags, err := xzHeaderFlags(r, off)
	if err != nil {
		return nil, err
	}
	end, err := xzStreamEnd(r, off, size, flags)
	if err != nil {
		return nil, err
	}
	z, err := xz.ReaderConfig{SingleStream: true, DictCap: maxLzmaDict}.NewReader(
		bufio.NewReaderSize(io.NewSectionReader(r, off, end-off), 256<<10))
	if err != nil {
		return nil, fmt.Errorf("xz header: %w", err)
	}
	return &fixedEnd{Reader: z, at: end}, nil
}

// fixedEnd is a stream whose end was known before decoding.
type fixedEnd struct {
	io.Reader
	at int64
}

func (s *fixedEnd) end() int64 { return s.at }

// xzHeaderFlags checks the 12-byte stream header and returns its flags.
func xzHeaderFlags(r io.ReaderAt, off int64) ([2]byte, error) {
	var h [12]byte
	if _, err := r.ReadAt(h[:], off); err != nil {
		return [2]byte{}, fmt.Errorf("xz stream header: %w", ErrTruncated)
	}
	if crc32.ChecksumIEEE(h[6:8]) != binary.LittleEndian.Uint32(h[8:12]) {
		return [2]byte{}, errors.New("xz stream header: CRC32 mismatch")
	}
	return [2]byte{h[6], h[7]}, nil
}

// xzStreamEnd returns the offset just past the stream footer: the first
// "YZ" at a 4-byte multiple from off whose footer CRC32 holds, whose flags
// match the header's and whose backward size points at a valid index.
func xzStreamEnd(r io.ReaderAt, off, size int64, flags [2]byte) (int64, error) {
	const chunk = 1 << 20
	buf := make([]byte, chunk+1)
	for base := off + 12; base < size; base += chunk {
		n, err := r.ReadAt(buf[:min(int64(len(buf)), size-base)], base)
		if err != nil && err != io.EOF {
			return 0, err
		}
		b := buf[:n]
		for i := 0; ; {
			j := bytes.Index(b[i:], []byte("YZ"))
			if j < 0 || i+j >= chunk {
				break
			}
			end := base + int64(i+j) + 2
			if (end-off)%4 == 0 && xzFooterValid(r, off, end, flags) {
				return end, nil
			}
			i += j + 1
		}
	}
	return 0, fmt.Errorf("xz stream has no valid footer: %w", ErrTruncated)
}

func xzFooterValid(r io.ReaderAt, off, end int64, flags [2]byte) bool {
	var f [12]byte
	if end-off < 24 || readFull(r, f[:], end-12) != nil {
		return false
	}
	if crc32.ChecksumIEEE(f[4:10]) != binary.LittleEndian.Uint32(f[0:4]) || f[8] != flags[0] || f[9] != flags[1] {
		return false
	}
	back := (int64(binary.LittleEndian.Uint32(f[4:8])) + 1) * 4
	idx := end - 12 - back
	if idx < off+12 || back > 1<<24 {
		return false
	}
	index := make([]byte, back)
	if readFull(r, index, idx) != nil || index[0] != 0 {
		return false
	}
	return crc32.ChecksumIEEE(index[:back-4]) == binary.LittleEndian.Uint32(index[back-4:])
}

func readFull(r io.ReaderAt, b []byte, off int64) error {
	n, err := r.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}
