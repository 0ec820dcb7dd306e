package rootprep

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"ferry/internal/atomicfile"
)

// Stats counts what a copy or archive did.
type Stats struct {
	Files, Dirs, Symlinks, HardLinks, Devices int64
	Bytes                                     int64 // bytes of regular file data
	ReflinkBytes                              int64 // of Bytes, shared with the template by FICLONE
	XattrsSkipped                             int64 // attributes the destination refused
}

// Progress is called now and then while a tree is copied or archived, and
// once at the end.
type Progress func(s Stats)

// Preparer owns the roots directory and the archive directory.
type Preparer struct {
	Roots    string // per-server roots live directly under it
	Archives string // where Archive puts NAME-TIME.tar.zst
	Log      *slog.Logger
	Progress Progress // may be nil
	// ProgressEvery is the number of entries between Progress calls
	// (default 1000).
	ProgressEvery int64

	// beforeOpen, for tests, runs between looking at an entry and opening
	// it: where a concurrent writer swaps things.
	beforeOpen func(path string)
}

// New returns a Preparer for roots and archives, making both directories.
func New(roots, archives string, log *slog.Logger) (*Preparer, error) {
	for _, d := range []string{roots, archives} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("rootprep: %w", err)
		}
	}
	r, err := filepath.Abs(roots)
	if err != nil {
		return nil, err
	}
	a, err := filepath.Abs(archives)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Preparer{Roots: r, Archives: a, Log: log}, nil
}

// MaxNameLen bounds a root's name.
const MaxNameLen = 128

// ValidateName accepts 1 to MaxNameLen bytes of [A-Za-z0-9._-] that start
// with a letter or digit.
func ValidateName(name string) error {
	if name == "" || len(name) > MaxNameLen {
		return fmt.Errorf("root name %.80q: want 1 to %d characters", name, MaxNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || !strings.ContainsRune("._-", rune(c))) {
			return fmt.Errorf("root name %q: byte %d (%q) not allowed", name, i, c)
		}
	}
	return nil
}

// root checks that dir names an entry directly under Roots and returns its
// name. It is the guard that keeps Archive and Delete inside Roots.
func (p *Preparer) root(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	if filepath.Dir(abs) != p.Roots {
		return "", fmt.Errorf("rootprep: %s is not directly under the roots directory %s", dir, p.Roots)
	}
	name := filepath.Base(abs)
	if err := ValidateName(name); err != nil {
		return "", fmt.Errorf("rootprep: %s: %w", dir, err)
	}
	st, err := os.Lstat(abs)
	if err != nil {
		return "", fmt.Errorf("rootprep: %w", err)
	}
	if !st.IsDir() {
		return "", fmt.Errorf("rootprep: %s is a %s, not a directory", dir, st.Mode().Type())
	}
	return name, nil
}

// Prepare copies template into Roots/NAME and returns that path. An
// existing root of that name is refused; on failure nothing is left behind.
func (p *Preparer) Prepare(ctx context.Context, template, name string) (string, Stats, error) {
	if err := ValidateName(name); err != nil {
		return "", Stats{}, err
	}
	dst := filepath.Join(p.Roots, name)
	if _, err := os.Lstat(dst); err == nil {
		return "", Stats{}, fmt.Errorf("rootprep: root %s already exists", dst)
	}
	src, err := filepath.EvalSymlinks(template)
	if err != nil {
		return "", Stats{}, fmt.Errorf("rootprep: template: %w", err)
	}
	tmp, err := os.MkdirTemp(p.Roots, "."+name+".tmp-")
	if err != nil {
		return "", Stats{}, fmt.Errorf("rootprep: %w", err)
	}
	st, err := copyTree(ctx, src, tmp, p.progress())
	if err == nil {
		err = renameNoReplace(tmp, dst)
	}
	if err != nil {
		os.RemoveAll(tmp)
		return "", st, fmt.Errorf("rootprep: prepare %s from %s: %w", name, template, err)
	}
	atomicfile.SyncDir(p.Roots)
	p.Log.Info("root prepared", "root", dst, "template", template, "files", st.Files, "bytes", st.Bytes, "reflinked_bytes", st.ReflinkBytes)
	return dst, st, nil
}

// Delete removes the root at dir, which must be directly under Roots. It
// is renamed away first, so it vanishes at once.
func (p *Preparer) Delete(ctx context.Context, dir string) error {
	name, err := p.root(dir)
	if err != nil {
		return err
	}
	gone, err := os.MkdirTemp(p.Roots, "."+name+".rm-")
	if err != nil {
		return fmt.Errorf("rootprep: %w", err)
	}
	if err := os.Rename(filepath.Join(p.Roots, name), filepath.Join(gone, name)); err != nil {
		os.Remove(gone)
		return fmt.Errorf("rootprep: delete %s: %w", dir, err)
	}
	atomicfile.SyncDir(p.Roots)
	if err := os.RemoveAll(gone); err != nil {
		return fmt.Errorf("rootprep: delete %s: renamed to %s, but: %w", dir, gone, err)
	}
	p.Log.Info("root deleted", "root", dir)
	return nil
}

func (p *Preparer) progress() *progress {
	every := p.ProgressEvery
	if every <= 0 {
		every = 1000
	}
	return &progress{fn: p.Progress, every: every, beforeOpen: p.beforeOpen}
}

// progress calls fn every so many entries.
type progress struct {
	fn         Progress
	every      int64
	n          int64
	beforeOpen func(path string)
}

func (pr *progress) opening(path string) {
	if pr.beforeOpen != nil {
		pr.beforeOpen(path)
	}
}

func (pr *progress) tick(s *Stats) {
	pr.n++
	if pr.fn != nil && pr.n%pr.every == 0 {
		pr.fn(*s)
	}
}

func (pr *progress) done(s *Stats) {
	if pr.fn != nil {
		pr.fn(*s)
	}
}
