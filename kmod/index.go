package kmod

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
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
	dir     string // absolute
	files   map[string]Module
	builtin map[string]bool
	infos   map[string]Info // read lazily, by normalised name
}

// maxModules bounds the walk: a full distribution kernel has about 4000.
const maxModules = 1 << 16

// newIndex walks dir once and records every module file by name. When two
// files name the same module, one under "updates/" wins, as with depmod's
// default search order; otherwise the first in lexical path order wins. A
// modules.builtin file at the top of dir, if present, lists modules that are
// part of the kernel image and need no loading.
func newIndex(dir string) (*index, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	ix := &index{dir: abs, files: map[string]Module{}, builtin: map[string]bool{}, infos: map[string]Info{}}
	err = filepath.WalkDir(abs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		stem, ok := moduleStem(d.Name())
		if !ok {
			return nil
		}
		key := NormalizeName(stem)
		rel, err := filepath.Rel(abs, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if old, dup := ix.files[key]; dup {
			if !(isUpdate(rel) && !isUpdate(old.Rel)) {
				return nil
			}
		} else if len(ix.files) >= maxModules {
			return fmt.Errorf("more than %d modules", maxModules)
		}
		ix.files[key] = Module{Name: stem, Path: p, Rel: rel}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("kmod: indexing %s: %w", dir, err)
	}
	if err := ix.readBuiltin(filepath.Join(abs, "modules.builtin")); err != nil {
		return nil, fmt.Errorf("kmod: %w", err)
	}
	return ix, nil
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
	sc := bufio.NewScanner(f)
	for n := 0; sc.Scan(); n++ {
		if n >= maxModules {
			return fmt.Errorf("%s: more than %d lines", p, maxModules)
		}
		if stem, ok := moduleStem(path.Base(strings.TrimSpace(sc.Text()))); ok {
			ix.builtin[NormalizeName(stem)] = true
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	return nil
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
	info, cached := ix.infos[key]
	if !cached {
		var err error
		if info, err = ReadInfoFile(m.Path); err != nil {
			return m, true, err
		}
		ix.infos[key] = info
	}
	m.Depends = info.Depends
	return m, true, nil
}

// info returns the cached .modinfo of an indexed module.
func (ix *index) info(name string) Info { return ix.infos[NormalizeName(name)] }
