package initrd

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
)

// Layout is what Patch learns about an image without decompressing it.
type Layout struct {
	PlainEnd        int64 // end of the last leading uncompressed archive (0 if none)
	FirstCompressed int64 // offset of the first compressed segment, or the size
	Compression     Compression
	LZ4After        bool // an lz4-legacy segment follows, or may (see ReadLayout)
}

// ReadLayout walks the leading uncompressed segments of an image header by
// header, skipping bodies, up to the first compressed segment. From there
// it must only learn whether an lz4-legacy segment follows. zstd frames and
// uncompressed archives are skipped by their headers, which costs a few
// reads; at a segment that cannot be skipped without decoding (gzip, xz,
// bzip2, lzma) it searches the rest of the file for the lz4-legacy magic.
// A false positive of that search only costs the safe placement.
func ReadLayout(r io.ReaderAt, size int64, name string) (*Layout, error) {
	l := &Layout{FirstCompressed: -1}
	s := &Scanner{Name: name}
	off := int64(0)
	for idx := 0; ; idx++ {
		next, err := skipZeroBytes(r, off, size)
		if err != nil {
			return nil, s.fileErr(off, err)
		}
		if next == size {
			if l.FirstCompressed < 0 {
				l.FirstCompressed = size
			}
			return l, nil
		}
		var head [maxMagicBytes]byte
		n, _ := r.ReadAt(head[:min(int64(len(head)), size-next)], next)
		c, ok := detect(head[:n])
		if !ok || (c == None && next%4 != 0) {
			return nil, s.fileErr(next, fmt.Errorf("bytes % x are not a 4-byte aligned cpio header or compression magic", head[:n]))
		}
		if c != None && l.FirstCompressed < 0 {
			l.FirstCompressed, l.Compression = next, c
		}
		var end int64
		switch c {
		case None:
			end, err = skipArchive(r, next, size)
		case Zstd:
			end, err = zstdFramesEnd(r, next, size)
		case LZ4:
			l.LZ4After = true
			return l, nil
		default:
			l.LZ4After, err = containsAt(r, next, size, []byte(magicLZ4))
			return l, err
		}
		if err != nil {
			return nil, s.segErr(&Segment{Index: idx, Offset: next, Compression: c}, err)
		}
		if c == None && l.FirstCompressed < 0 {
			l.PlainEnd = end
		}
		off = end
	}
}

// skipArchive reads the headers of the uncompressed archive at off, skipping
// bodies, and returns the offset just past its trailer.
func skipArchive(r io.ReaderAt, off, size int64) (int64, error) {
	var h [headerLen]byte
	pos := off
	for i := 0; ; i++ {
		e := &Entry{Index: i, Offset: pos - off}
		if err := readFull(r, h[:], pos); err != nil {
			return 0, &entryError{index: i, offset: e.Offset, err: fmt.Errorf("header: %w", ErrTruncated)}
		}
		nameSize, err := parseHeader(h[:], e)
		if err == nil && (nameSize == 0 || nameSize > maxNameLen+1) {
			err = fmt.Errorf("name size %d not in 1..%d", nameSize, maxNameLen+1)
		}
		if err != nil {
			return 0, &entryError{index: i, offset: e.Offset, err: err}
		}
		name := make([]byte, nameSize)
		if err := readFull(r, name, pos+headerLen); err != nil {
			return 0, &entryError{index: i, offset: e.Offset, err: fmt.Errorf("name: %w", ErrTruncated)}
		}
		pos = align4(pos+headerLen+int64(nameSize)-off) + off
		if pos += align4(e.Size); pos > size {
			return 0, &entryError{index: i, offset: e.Offset, err: fmt.Errorf("body runs past the end of the file: %w", ErrTruncated)}
		}
		if string(name) == trailer+"\x00" {
			return pos, nil
		}
	}
}

// containsAt reports whether pattern occurs in r between off and size. The
// range is split among the CPUs: this search is most of Patch's own work.
func containsAt(r io.ReaderAt, off, size int64, pattern []byte) (bool, error) {
	parts := int64(runtime.GOMAXPROCS(0))
	step := max((size-off+parts-1)/parts, 1<<20)
	var found atomic.Bool
	errs := make(chan error, parts)
	var wg sync.WaitGroup
	for lo := off; lo < size; lo += step {
		hi := min(lo+step+int64(len(pattern))-1, size)
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := containsRange(r, lo, hi, pattern, &found)
			if ok {
				found.Store(true)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return false, err
		}
	}
	return found.Load(), nil
}

// containsRange searches [lo, hi) sequentially; it stops early once another
// part has found the pattern.
func containsRange(r io.ReaderAt, lo, hi int64, pattern []byte, found *atomic.Bool) (bool, error) {
	buf := make([]byte, 1<<20)
	keep := len(pattern) - 1
	for pos := lo; pos < hi && !found.Load(); {
		n, err := r.ReadAt(buf[:min(int64(len(buf)), hi-pos)], pos)
		if bytes.Contains(buf[:n], pattern) {
			return true, nil
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return false, err
		}
		if n <= keep || pos+int64(n) >= hi {
			return false, nil
		}
		pos += int64(n - keep)
	}
	return false, nil
}
