package rootprep

import (
	"context"
	"fmt"
	"io/fs"
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
	return p.PrepareWith(ctx, template, name, p.Progress)
}

// PrepareWith is Prepare telling fn (instead of p.Progress) how the copy
// goes: every ProgressEvery entries and every 64 MiB of file data, so
// that several copies at once each report their own.
func (p *Preparer) PrepareWith(ctx context.Context, template, name string, fn Progress) (string, Stats, error) {
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
	var st Stats
	err = lowPriority(func() (err error) {
		st, err = copyTree(ctx, src, tmp, p.progressTo(fn))
		return err
	})
	if err == nil {
		// A copy cancelled after its last file (a reflinked one ends
		// in one call) is never put in place.
		err = ctx.Err()
	}
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

func (p *Preparer) progress() *progress { return p.progressTo(p.Progress) }

func (p *Preparer) progressTo(fn Progress) *progress {
	every := p.ProgressEvery
	if every <= 0 {
		every = 1000
	}
	return &progress{fn: fn, every: every, beforeOpen: p.beforeOpen}
}

// RemovePartial removes what a copy into Roots/NAME left behind when the
// process died in the middle of it (Prepare removes its own on failure,
// but not after a kill): the hidden temporary directories of that name.
// The root itself, renamed into place only whole, is never touched. Call
// it only while no Prepare of name runs.
func (p *Preparer) RemovePartial(name string) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	left, err := filepath.Glob(filepath.Join(p.Roots, "."+name+".tmp-*"))
	if err != nil {
		return err
	}
	for _, d := range left {
		if err := os.RemoveAll(d); err != nil {
			return fmt.Errorf("rootprep: remove the partial copy %s: %w", d, err)
		}
		p.Log.Info("partial root copy removed", "dir", d)
	}
	return nil
}

// TemplateBytes is the bytes of regular file data under template (on its
// own file system, as Prepare copies it): what a copy's progress is
// measured against. It reads metadata only.
func TemplateBytes(template string) (int64, error) {
	src, err := filepath.EvalSymlinks(template)
	if err != nil {
		return 0, fmt.Errorf("rootprep: template: %w", err)
	}
	top, err := os.Lstat(src)
	if err != nil {
		return 0, fmt.Errorf("rootprep: template: %w", err)
	}
	var n int64
	err = filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() && path != src && !sameDevice(top, fi) {
			return filepath.SkipDir
		}
		if fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("rootprep: template %s: %w", template, err)
	}
	return n, nil
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

// bytes is called after each chunk of file data.
func (pr *progress) bytes(s *Stats) {
	if pr.fn != nil {
		pr.fn(*s)
	}
}

func (pr *progress) done(s *Stats) {
	if pr.fn != nil {
		pr.fn(*s)
	}
}
