package kmod

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

// Module is one kernel module file and what it needs.
type Module struct {
	// Name is the module's name as its file names it (without .ko).
	Name string
	// Path is the absolute path of the .ko file.
	Path string
	// Rel is Path relative to the directory that was searched, with '/'.
	Rel string
	// Depends is the module's depends= field.
	Depends []string
}

// index maps normalised module names to the files under one directory.
type index struct {
	dir     string // absolute; the first of dirs, for messages
	dirs    []string
	present map[string][]string // dir -> the module names found in it, shadowed or not
	files   map[string]Module
	builtin map[string]bool

	// The .modinfo of each module is read when first asked for, and a
	// tree is resolved from on several goroutines at once (B's NFS
	// client loads beside its devices' drivers): mu guards infos.
	mu    sync.Mutex
	infos map[string]Info // by normalised name
}

// maxModules bounds the walk: a full distribution kernel has about 4000.
const maxModules = 1 << 16

// newIndex walks dir once and records every module file by name. When two
// files name the same module, one under "updates/" wins, as with depmod's
// default search order; otherwise the first in lexical path order wins. A
// modules.builtin file at the top of dir, if present, lists modules that are
// part of the kernel image and need no loading.
func newIndex(dir string) (*index, error) { return newIndexOf([]string{dir}) }

// newIndexOf indexes several directories of modules for one kernel (B's
// own initrd tree and the borrower's bundle) as one: a module in an
// earlier directory wins over one of the same name in a later one, and a
// dependency is looked for in all.
func newIndexOf(dirs []string) (*index, error) {
	if len(dirs) == 0 {
		return nil, fmt.Errorf("kmod: no module directory")
	}
	ix := &index{files: map[string]Module{}, builtin: map[string]bool{}, infos: map[string]Info{}, present: map[string][]string{}}
	for i, dir := range dirs {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return nil, err
		}
		if i == 0 {
			ix.dir = abs
		}
		ix.dirs = append(ix.dirs, abs)
		if err := ix.walk(abs, dir, i > 0); err != nil {
			return nil, err
		}
	}
	return ix, nil
}

// walk adds the modules under abs; later is set for every directory but
// the first, whose modules are only added where the name is new.
func (ix *index) walk(abs, dir string, later bool) error {
	seen := map[string]bool{}
	err := filepath.WalkDir(abs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		stem, ok := ModuleStem(d.Name())
		if !ok {
			return nil
		}
		key := NormalizeName(stem)
		rel, err := filepath.Rel(abs, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if !seen[key] {
			ix.present[abs] = append(ix.present[abs], stem)
		}
		if old, dup := ix.files[key]; dup {
			if later && !seen[key] {
				seen[key] = true
				return nil // an earlier directory has it
			}
			if !(isUpdate(rel) && !isUpdate(old.Rel)) {
				return nil
			}
		} else if len(ix.files) >= maxModules {
			return fmt.Errorf("more than %d modules", maxModules)
		}
		ix.files[key] = Module{Name: stem, Path: p, Rel: rel}
		seen[key] = true
		return nil
	})
	if err != nil {
		return fmt.Errorf("kmod: indexing %s: %w", dir, err)
	}
	if err := ix.readBuiltin(filepath.Join(abs, "modules.builtin")); err != nil {
		return fmt.Errorf("kmod: %w", err)
	}
	return nil
}

func isUpdate(rel string) bool { return strings.HasPrefix(rel, "updates/") }

// readBuiltin reads modules.builtin ("kernel/fs/ext4/ext4.ko" a line).
func (ix *index) readBuiltin(p string) error {
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	b, err := ParseModulesBuiltin(f, p)
	if err != nil {
		return err
	}
	ix.builtin = b
	return nil
}

// ParseModulesBuiltin reads a modules.builtin ("kernel/fs/ext4/ext4.ko" a
// line), named name in errors, into the normalised names of the modules
// built into the kernel.
func ParseModulesBuiltin(r io.Reader, name string) (map[string]bool, error) {
	out := map[string]bool{}
	sc := bufio.NewScanner(r)
	for n := 0; sc.Scan(); n++ {
		if n >= maxModules {
			return nil, fmt.Errorf("%s: more than %d lines", name, maxModules)
		}
		if stem, ok := ModuleStem(path.Base(strings.TrimSpace(sc.Text()))); ok {
			out[NormalizeName(stem)] = true
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return out, nil
}

// names returns every indexed module name, sorted.
func (ix *index) names() []string {
	out := make([]string, 0, len(ix.files))
	for k := range ix.files {
		out = append(out, ix.files[k].Name)
	}
	sort.Strings(out)
	return out
}

// module returns the module called name with its depends= filled in.
func (ix *index) module(name string) (Module, bool, error) {
	key := NormalizeName(name)
	m, ok := ix.files[key]
	if !ok {
		return Module{}, false, nil
	}
	ix.mu.Lock()
	info, cached := ix.infos[key]
	ix.mu.Unlock()
	if !cached {
		// Read outside the lock: two goroutines may both read a module
		// first, and both get the same Info.
		var err error
		if info, err = ReadInfoFile(m.Path); err != nil {
			return m, true, err
		}
		ix.mu.Lock()
		ix.infos[key] = info
		ix.mu.Unlock()
	}
	m.Depends = info.Depends
	return m, true, nil
}

// info returns the cached .modinfo of an indexed module.
func (ix *index) info(name string) Info {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return ix.infos[NormalizeName(name)]
}
