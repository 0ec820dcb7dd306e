package initrd

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
)

// PageSize is the granularity of kexec_load's segments: each part of an
// in-place patch starts on a page boundary, zero-filled up to it.
const PageSize = 4096

// PatchInPlace is Patch for a loader that takes the new initrd as parts
// in memory, each placed on a page boundary after the previous one with
// zeros between (kexec_load's segments): in is initrd(B), big the largest
// new file (ferry itself) with its contents bigData, files the others.
// Laid out so, the parts are the bytes Patch would write, with zero
// padding where the kernel's unpacker (and Scan) skip it, i.e. after an
// archive's trailer; nothing of in or bigData is copied except bigData's
// last partial page. The parts alias in and bigData.
//
// The new segment is one archive of files and a second whose single
// entry is big: its header ends exactly at a page boundary, where
// bigData's whole pages follow; the tail part holds the rest of bigData,
// the entry's padding and the trailer.
func PatchInPlace(in []byte, name string, files []File, big File, bigData []byte) ([][]byte, *PatchReport, error) {
	layout, err := ReadLayout(bytes.NewReader(in), int64(len(in)), name)
	if err != nil {
		return nil, nil, err
	}
	if layout.PlainEnd == 0 && layout.FirstCompressed == int64(len(in)) {
		return nil, nil, &Error{File: name, Segment: -1, Entry: -1, Err: errors.New("no initramfs segment: the file is empty or only zero padding")}
	}
	if !big.Mode.IsRegular() || big.Src != "" || big.Data != nil || big.Link != "" {
		return nil, nil, fmt.Errorf("in-place file %q: want a regular file given by its bytes alone", big.Path)
	}
	if int64(len(bigData)) > 1<<32-1 {
		return nil, nil, fmt.Errorf("%q: %d bytes do not fit newc's 32-bit size: %w", big.Path, len(bigData), ErrTooLarge)
	}
	bigName, err := CleanPath(big.Path)
	if err != nil {
		return nil, nil, err
	}
	if hasPath(files, bigName) {
		return nil, nil, fmt.Errorf("in-place file %q is also among the other files", bigName)
	}
	// Big's parent directory goes into the first archive (writeArchive
	// adds its own parents), unless files has it already.
	withParent := files
	if dir := path.Dir(bigName); dir != "." && !hasPath(files, dir) {
		withParent = append(slices.Clip(files), File{Path: dir, Mode: fs.ModeDir | 0o755})
	}
	// The head is written once into a buffer of about its final size:
	// under TCG, growing it by doubling (fresh pages faulted in and
	// copied each time) cost more than the copy it saves.
	var head bytes.Buffer
	head.Grow(archiveSizeHint(withParent) + PageSize)
	_, entries, err := writeArchive(&head, withParent)
	if err != nil {
		return nil, nil, err
	}
	hdr := newcHeader(uint32(entries+1), uint32(fileModeToLinux(big.Mode)), uint32(max(big.MTime, 0)), uint32(len(bigData)), bigName)
	head.Write(make([]byte, alignUpInt(head.Len()+len(hdr), PageSize)-len(hdr)-head.Len()))
	head.Write(hdr)

	whole := len(bigData) &^ (PageSize - 1)
	var tail bytes.Buffer
	tail.Write(bigData[whole:])
	tail.Write(make([]byte, alignUpInt(len(bigData), 4)-len(bigData)))
	tail.Write(newcHeader(0, 0, 0, 0, trailer))

	ours := [][]byte{head.Bytes(), bigData[:whole], tail.Bytes()}
	rep := &PatchReport{InSize: int64(len(in)), Compression: None, Entries: entries}
	before, after := in, []byte(nil)
	if layout.LZ4After {
		rep.BeforeCompressed = true
		before, after = in[:layout.PlainEnd], in[layout.PlainEnd:]
	}
	parts := append(append([][]byte{before}, ours...), after)
	rep.SegmentOffset = int64(alignUpInt(len(before), PageSize))
	rep.SegmentLength = PartsLen(ours)
	rep.OutSize = PartsLen(parts)
	return parts, rep, nil
}

// PartsLen is how long parts are laid out as PatchInPlace means: each
// but the last rounded up to whole pages (an empty one takes no room).
func PartsLen(parts [][]byte) int64 {
	var n int64
	for i, p := range parts {
		if i == len(parts)-1 {
			n += int64(len(p))
		} else {
			n += int64(alignUpInt(len(p), PageSize))
		}
	}
	return n
}

// archiveSizeHint is about the size of the archive of files: their
// contents (Src files by their size now) and a header's room each.
func archiveSizeHint(files []File) int {
	n := 2 * headerLen
	for _, f := range files {
		n += headerLen + len(f.Path) + 8 + len(f.Data) + len(f.Link)
		if f.Src != "" {
			if st, err := os.Stat(f.Src); err == nil {
				n += int(st.Size())
			}
		}
	}
	return n
}

// hasPath reports whether a file of files is at the cleaned path p.
func hasPath(files []File, p string) bool {
	for _, f := range files {
		if c, err := CleanPath(f.Path); err == nil && c == p {
			return true
		}
	}
	return false
}

// newcHeader is a 070701 header with name, padded so that data follows
// 4-byte aligned. ino, mode, mtime and size as given; one link.
func newcHeader(ino, mode, mtime, size uint32, name string) []byte {
	nlink := uint32(1)
	h := fmt.Sprintf("%s%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		magicNewc, ino, mode, 0, 0, nlink, mtime, size, 0, 0, 0, 0, len(name)+1, 0)
	b := append([]byte(h), name...)
	b = append(b, 0)
	return append(b, make([]byte, alignUpInt(len(b), 4)-len(b))...)
}

func alignUpInt(v, a int) int { return (v + a - 1) / a * a }
