// Package siteinit writes what a new lender or borrower site needs to
// start: every key and certificate of the pair of organisations (each
// one's CA, the manager-to-manager server and client certificates, the
// images server, the keeper client, the gateway), a complete starting
// configuration with each setting explained, and the files the other
// site needs, with the exact command to run there.
//
// It is what the lab's old scripts/full-e2e.sh did with some thirty openssl and shell
// steps, done with ferry's own pki package: keys are ECDSA P-256, written
// 0600, never printed; all files of a run are written or none (each to a
// temporary file beside it, renamed into place at the end), and an
// existing file is never replaced without Force.
package siteinit

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"ferry/internal/atomicfile"
)

// File is one file a site needs.
type File struct {
	Path string
	Data []byte
	Mode os.FileMode
}

// Plan is the files of one init, written all at once by Commit.
type Plan struct {
	Files []File
	Dirs  map[string]os.FileMode // directories to make (also made for each file's parent)
	Force bool                   // replace existing files
}

// Add adds a file to the plan.
func (p *Plan) Add(path string, data []byte, mode os.FileMode) { p.add(path, data, mode) }

func (p *Plan) add(path string, data []byte, mode os.FileMode) {
	p.Files = append(p.Files, File{Path: path, Data: data, Mode: mode})
}

func (p *Plan) dir(path string, mode os.FileMode) {
	if p.Dirs == nil {
		p.Dirs = map[string]os.FileMode{}
	}
	p.Dirs[path] = mode
}

// Commit writes every file of the plan or none: it refuses (before
// writing anything) when a file exists and Force is not set, writes each
// file to a temporary file in its directory with its mode, syncs it, and
// renames them all into place once all are written.
func (p *Plan) Commit() error {
	if !p.Force {
		var exist []error
		onlyConfig := true
		for _, f := range p.Files {
			if _, err := os.Lstat(f.Path); err == nil {
				exist = append(exist, fmt.Errorf("%s exists", f.Path))
				onlyConfig = onlyConfig && filepath.Ext(f.Path) == ".json"
			}
		}
		if len(exist) > 0 && onlyConfig {
			return fmt.Errorf("siteinit: only the configuration exists, no key or certificate (a package's template?): --force replaces it:\n%w", errors.Join(exist...))
		}
		if len(exist) > 0 {
			return fmt.Errorf("siteinit: refusing to replace existing files (--force replaces them; a new CA invalidates every certificate it signed):\n%w", errors.Join(exist...))
		}
	}
	dirs := make([]string, 0, len(p.Dirs))
	for d := range p.Dirs {
		dirs = append(dirs, d)
	}
	sort.Strings(dirs)
	for _, d := range dirs {
		if err := os.MkdirAll(d, p.Dirs[d]); err != nil {
			return fmt.Errorf("siteinit: %w", err)
		}
	}
	var temps []string
	cleanup := func() {
		for _, t := range temps {
			os.Remove(t)
		}
	}
	for _, f := range p.Files {
		t, err := writeTemp(f)
		if err != nil {
			cleanup()
			return err
		}
		temps = append(temps, t)
	}
	for i, f := range p.Files {
		if err := os.Rename(temps[i], f.Path); err != nil {
			cleanup()
			return fmt.Errorf("siteinit: %w", err)
		}
	}
	for _, d := range dirs {
		atomicfile.SyncDir(d)
	}
	return nil
}

func writeTemp(f File) (string, error) {
	dir := filepath.Dir(f.Path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("siteinit: %w", err)
	}
	t, err := os.CreateTemp(dir, "."+filepath.Base(f.Path)+".tmp-*")
	if err != nil {
		return "", fmt.Errorf("siteinit: %w", err)
	}
	name := t.Name()
	fail := func(err error) (string, error) {
		t.Close()
		os.Remove(name)
		return "", fmt.Errorf("siteinit: write %s: %w", f.Path, err)
	}
	// CreateTemp makes the file 0600: a key is never readable by others,
	// not even for a moment.
	if err := t.Chmod(f.Mode); err != nil {
		return fail(err)
	}
	if _, err := t.Write(f.Data); err != nil {
		return fail(err)
	}
	if err := t.Sync(); err != nil {
		return fail(err)
	}
	if err := t.Close(); err != nil {
		os.Remove(name)
		return "", fmt.Errorf("siteinit: write %s: %w", f.Path, err)
	}
	return name, nil
}
