package initrd

import (
	"errors"
	"fmt"
	"strings"
)

// Error locates a problem in an initramfs file: the file, the segment and
// its byte offset in the file, and, when the problem is inside a cpio
// archive, the entry and its offset in the segment's (decompressed) data.
type Error struct {
	File        string
	Segment     int // -1 when the problem is not inside a segment
	Compression Compression
	Offset      int64 // segment offset in the file, or problem offset if Segment < 0
	Entry       int   // -1 when not inside an entry
	EntryName   string
	EntryOffset int64 // offset of the entry header in the segment's data
	Err         error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Segment >= 0 {
		fmt.Fprintf(&b, ": segment %d (%s) at offset %#x", e.Segment, e.Compression, e.Offset)
	} else {
		fmt.Fprintf(&b, ": at offset %#x", e.Offset)
	}
	if e.Entry >= 0 {
		fmt.Fprintf(&b, ": cpio entry %d", e.Entry)
		if e.EntryName != "" {
			fmt.Fprintf(&b, " %q", e.EntryName)
		}
		fmt.Fprintf(&b, " at %#x", e.EntryOffset)
	}
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Sentinel errors that callers may test for with errors.Is.
var (
	// ErrTruncated means the input ended inside a header, name, body or
	// compressed stream.
	ErrTruncated = errors.New("truncated")
	// ErrNoTrailer means an archive ended without its TRAILER!!! entry.
	ErrNoTrailer = errors.New("archive has no TRAILER!!! entry")
	// ErrUnsafeName means an entry name would escape the extraction root.
	ErrUnsafeName = errors.New("unsafe name")
	// ErrTooLarge means a size exceeds a configured or format limit.
	ErrTooLarge = errors.New("too large")
)

// entryError carries the entry part of a location up to the scanner, which
// adds the file and segment.
type entryError struct {
	index  int
	name   string
	offset int64
	err    error
}

func (e *entryError) Error() string {
	return fmt.Sprintf("cpio entry %d %q at %#x: %v", e.index, e.name, e.offset, e.err)
}

func (e *entryError) Unwrap() error { return e.err }
