package initrd

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/u-root/u-root/pkg/cpio"
)

// File is one thing to put into an archive. Its kind follows from its
// fields: Link set makes a symlink, fs.ModeDir a directory, fs.ModeDevice
// (with fs.ModeCharDevice for a character device) a device node with
// Major/Minor; otherwise a regular file with Data, or the contents of Src.
type File struct {
	Path  string      // path inside the archive; cleaned, no ".."
	Mode  fs.FileMode // permission bits and type bits
	Src   string      // copy the contents of this file (regular files)
	Data  []byte      // or use these contents
	Link  string      // symlink target
	Major uint32      // device numbers, for device nodes
	Minor uint32
	MTime int64 // seconds since the epoch; 0 by default
}

// Writing uses u-root's newc writer record by record: it writes device
// numbers (needed for /dev/console) and only ever the 070701 magic.
// github.com/cavaliercoder/go-cpio is not used for writing: after one entry
// with a checksum it flips a package-level format to 070702 for every later
// archive, and it has no device major/minor. u-root's WriteRecordsAndDirs
// is not used either: it emits "." and parents with mode 0777, which the
// kernel would apply to "/".

// CleanPath turns an archive path into the relative, cleaned form stored in
// the archive. It refuses empty paths, the root itself and ".." escapes.
func CleanPath(p string) (string, error) {
	if strings.IndexByte(p, 0) >= 0 {
		return "", fmt.Errorf("path %q has a NUL", p)
	}
	rel := strings.TrimLeft(p, "/")
	for _, part := range strings.Split(rel, "/") {
		if part == ".." {
			return "", fmt.Errorf("path %q has a \"..\" component: %w", p, ErrUnsafeName)
		}
	}
	c := path.Clean(rel)
	if c == "." || c == "" {
		return "", fmt.Errorf("path %q names the archive root", p)
	}
	if len(c) > maxNameLen {
		return "", fmt.Errorf("path %q is longer than %d bytes: %w", p[:64], maxNameLen, ErrTooLarge)
	}
	return c, nil
}

// plan is the sorted, complete list of records to write.
type plan struct {
	names []string
	files map[string]File
}

// makePlan cleans every path, adds missing parent directories (0755) and
// sorts, so that the same files always give the same bytes.
func makePlan(files []File) (*plan, error) {
	p := &plan{files: make(map[string]File)}
	for i, f := range files {
		name, err := CleanPath(f.Path)
		if err != nil {
			return nil, fmt.Errorf("file %d: %w", i, err)
		}
		if _, dup := p.files[name]; dup {
			return nil, fmt.Errorf("file %d: duplicate path %q", i, name)
		}
		f.Path = name
		p.files[name] = f
	}
	for name := range p.files {
		if err := p.addParents(name); err != nil {
			return nil, err
		}
	}
	for name := range p.files {
		p.names = append(p.names, name)
	}
	sort.Strings(p.names)
	return p, nil
}

func (p *plan) addParents(name string) error {
	for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
		f, ok := p.files[dir]
		if !ok {
			p.files[dir] = File{Path: dir, Mode: fs.ModeDir | 0o755}
			continue
		}
		if !f.Mode.IsDir() || f.Link != "" {
			return fmt.Errorf("%q needs %q to be a directory", name, dir)
		}
	}
	return nil
}

// WriteArchive writes files as one newc archive (with trailer) to w and
// returns the number of bytes written.
func WriteArchive(w io.Writer, files []File) (int64, error) {
	n, _, err := writeArchive(w, files)
	return n, err
}

// writeArchive also returns the number of records, without the trailer.
func writeArchive(w io.Writer, files []File) (int64, int, error) {
	p, err := makePlan(files)
	if err != nil {
		return 0, 0, err
	}
	cw := &countWriter{w: w}
	rw := cpio.Newc.Writer(cw)
	for i, name := range p.names {
		rec, err := record(p.files[name], uint64(i+1))
		if err != nil {
			return cw.n, i, err
		}
		if err := rw.WriteRecord(rec); err != nil {
			return cw.n, i, fmt.Errorf("writing %q: %w", name, err)
		}
	}
	if err := cpio.WriteTrailer(rw); err != nil {
		return cw.n, len(p.names), fmt.Errorf("writing trailer: %w", err)
	}
	return cw.n, len(p.names), nil
}

// record turns a File into a cpio record with inode ino.
func record(f File, ino uint64) (cpio.Record, error) {
	info := cpio.Info{Ino: ino, Name: f.Path, MTime: uint64(max(f.MTime, 0)), NLink: 1}
	switch {
	case f.Link != "":
		if len(f.Link) > maxLinkLen || strings.IndexByte(f.Link, 0) >= 0 {
			return cpio.Record{}, fmt.Errorf("%q: bad symlink target", f.Path)
		}
		info.Mode = sIFLNK | 0o777
		return staticRecord(info, []byte(f.Link)), nil
	case f.Mode.IsDir():
		info.Mode, info.NLink = uint64(fileModeToLinux(f.Mode)), 2
		return cpio.Record{Info: info}, nil
	case f.Mode&(fs.ModeDevice|fs.ModeNamedPipe|fs.ModeSocket) != 0:
		info.Mode, info.Rmajor, info.Rminor = uint64(fileModeToLinux(f.Mode)), uint64(f.Major), uint64(f.Minor)
		return cpio.Record{Info: info}, nil
	case !f.Mode.IsRegular():
		return cpio.Record{}, fmt.Errorf("%q: unsupported mode %v", f.Path, f.Mode)
	}
	info.Mode = uint64(fileModeToLinux(f.Mode))
	if f.Src == "" && len(f.Data) > 1<<32-1 {
		return cpio.Record{}, fmt.Errorf("%q: %d bytes do not fit newc's 32-bit size: %w", f.Path, len(f.Data), ErrTooLarge)
	}
	if f.Src == "" {
		return staticRecord(info, f.Data), nil
	}
	return srcRecord(info, f.Src)
}

func staticRecord(info cpio.Info, data []byte) cpio.Record {
	info.FileSize = uint64(len(data))
	return cpio.Record{ReaderAt: bytes.NewReader(data), Info: info}
}

// srcRecord opens src; the cpio writer closes it after copying.
func srcRecord(info cpio.Info, src string) (cpio.Record, error) {
	f, err := os.Open(src)
	if err != nil {
		return cpio.Record{}, fmt.Errorf("%q: %w", info.Name, err)
	}
	st, err := f.Stat()
	if err == nil && !st.Mode().IsRegular() {
		err = errors.New("not a regular file")
	}
	if err == nil && st.Size() > 1<<32-1 {
		err = fmt.Errorf("size %d does not fit newc's 32 bits: %w", st.Size(), ErrTooLarge)
	}
	if err != nil {
		f.Close()
		return cpio.Record{}, fmt.Errorf("%q from %s: %w", info.Name, src, err)
	}
	info.FileSize = uint64(st.Size())
	return cpio.Record{ReaderAt: f, Info: info}, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
