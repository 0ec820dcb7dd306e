// Package mapfile maps whole files read-only, for handing their bytes to
// the kernel (kexec_load's segments) without reading them into the heap.
package mapfile

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Map maps f read-only (nil for an empty file), refusing anything but a
// regular file of at most limit bytes. MAP_POPULATE faults the whole file
// in at once rather than page by page as the kernel copies it (under TCG
// the faults cost more than the copy). Unmap releases it.
func Map(f *os.File, limit int64) ([]byte, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	switch {
	case !st.Mode().IsRegular():
		return nil, fmt.Errorf("%s: not a regular file", f.Name())
	case st.Size() > limit:
		return nil, fmt.Errorf("%s: %d bytes, more than %d", f.Name(), st.Size(), limit)
	case st.Size() == 0:
		return nil, nil
	}
	b, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("mapping %s: %w", f.Name(), err)
	}
	return b, nil
}

// MapPath is Map of the file at p; the file need not stay open.
func MapPath(p string, limit int64) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Map(f, limit)
}

// Unmap releases what Map returned; nil is allowed.
func Unmap(b []byte) {
	if b != nil {
		unix.Munmap(b)
	}
}
