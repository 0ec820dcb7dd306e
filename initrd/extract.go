package initrd

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
)

// ExtractReport counts what Extract did.
type ExtractReport struct {
	Segments int
	Entries  int
	Skipped  int // device nodes, fifos and sockets, which Extract does not create
}

// Extract unpacks every segment of the image at imgPath into dir, in order,
// so later segments override earlier ones as in the kernel. All file
// operations go through an os.Root at dir, so neither absolute names nor
// symlinks can reach outside it; names with ".." components are refused.
func Extract(imgPath, dir string) (*ExtractReport, error) {
	f, err := os.Open(imgPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	rep := &ExtractReport{}
	segs, err := Scan(f, st.Size(), imgPath, func(_ *Segment, e *Entry, body io.Reader) error {
		return extractEntry(root, e, body, rep)
	})
	rep.Segments = len(segs)
	return rep, err
}

// safeName turns an entry name into a path relative to the root.
func safeName(name string) (string, error) {
	rel := strings.TrimLeft(name, "/")
	for _, part := range strings.Split(rel, "/") {
		if part == ".." {
			return "", fmt.Errorf("name has a \"..\" component: %w", ErrUnsafeName)
		}
	}
	if rel = path.Clean(rel); rel == "" {
		rel = "."
	}
	return rel, nil
}

func extractEntry(root *os.Root, e *Entry, body io.Reader, rep *ExtractReport) error {
	name, err := safeName(e.Name)
	if err != nil {
		return err
	}
	rep.Entries++
	if name == "." {
		return nil // the root itself: keep dir's own mode
	}
	if err := root.MkdirAll(path.Dir(name), 0o755); err != nil {
		return err
	}
	perm := e.FileMode().Perm()
	switch e.Mode & sIFMT {
	case sIFDIR:
		err = root.Mkdir(name, perm)
		if errors.Is(err, fs.ErrExist) {
			err = root.Chmod(name, perm)
		}
		return err
	case sIFLNK:
		replace(root, name)
		return root.Symlink(e.Link, name)
	case sIFREG:
		return extractFile(root, name, perm, body)
	}
	rep.Skipped++
	return nil
}

// replace removes a non-directory in the way, as the kernel does.
func replace(root *os.Root, name string) {
	if st, err := root.Lstat(name); err == nil && !st.IsDir() {
		root.Remove(name)
	}
}

func extractFile(root *os.Root, name string, perm fs.FileMode, body io.Reader) error {
	replace(root, name)
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
