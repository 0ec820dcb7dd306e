package kmod

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
)

// Coldplug, as udev does it at boot: every device on every bus exports its
// modalias (/sys/bus/*/devices/*/modalias, e.g. "pci:v00001AF4d00001000
// sv00001AF4sd00000001bc02sc00i00"); every module whose alias pattern
// matches it is loaded (udev's rule: "modprobe -b $env{MODALIAS}", which
// loads all matches). The patterns are fnmatch(3) globs that depmod
// collects into modules.alias from each module's alias= fields.

// Alias is one "alias PATTERN MODULE" pair.
type Alias struct {
	Pattern string
	Module  string
}

// Bounds on what alias tables and sysfs may hold.
const (
	maxAliases      = 1 << 20
	maxModaliasLen  = 4096
	maxDevices      = 1 << 16
	aliasLineBuffer = 64 << 10
)

// ReadAliases returns the alias table of the modules under dir: its
// modules.alias where depmod wrote one, else the alias= fields of every
// module's .modinfo (an unpacked package or a hand-made tree).
func ReadAliases(dir string) ([]Alias, error) {
	ix, err := newIndex(dir)
	if err != nil {
		return nil, err
	}
	return ix.aliases()
}

func (ix *index) aliases() ([]Alias, error) {
	var out []Alias
	var errs []error
	for _, dir := range ix.dirs {
		al, err := ix.aliasesOf(dir)
		out = append(out, al...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return out, errors.Join(errs...)
}

// aliasesOf is one directory's alias table: its modules.alias, else the
// .modinfo aliases of the indexed modules that live in it.
func (ix *index) aliasesOf(dir string) ([]Alias, error) {
	f, err := os.Open(filepath.Join(dir, "modules.alias"))
	if err == nil {
		defer f.Close()
		return ParseModulesAlias(f, f.Name())
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("kmod: %w", err)
	}
	var out []Alias
	var errs []error
	for _, n := range ix.names() {
		if !strings.HasPrefix(ix.files[NormalizeName(n)].Path, dir+string(filepath.Separator)) {
			continue
		}
		m, _, err := ix.module(n)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, p := range ix.info(n).Aliases {
			out = append(out, Alias{Pattern: p, Module: m.Name})
		}
	}
	return out, errors.Join(errs...)
}

// ParseModulesAlias reads depmod's modules.alias ("alias PATTERN MODULE"
// a line, '#' comments).
func ParseModulesAlias(r interface{ Read([]byte) (int, error) }, name string) ([]Alias, error) {
	var out []Alias
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, aliasLineBuffer), aliasLineBuffer)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 3 || f[0] != "alias" {
			return nil, fmt.Errorf("kmod: %s line %d: want \"alias PATTERN MODULE\", got %q", name, n, truncate([]byte(line)))
		}
		if err := checkName(f[2]); err != nil {
			return nil, fmt.Errorf("kmod: %s line %d: %w", name, n, err)
		}
		if len(out) >= maxAliases {
			return nil, fmt.Errorf("kmod: %s: more than %d aliases", name, maxAliases)
		}
		out = append(out, Alias{Pattern: f[1], Module: f[2]})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("kmod: %s: %w", name, err)
	}
	return out, nil
}

// BuiltinAliases reads the alias= fields of the drivers built into the
// kernel from dir/modules.builtin.modinfo (NUL-separated
// "module.key=value"), which the kernel build installs beside the modules.
// found is false when the file is absent: built-in drivers are unknown.
func BuiltinAliases(dir string) (aliases []Alias, found bool, err error) {
	data, err := os.ReadFile(filepath.Join(dir, "modules.builtin.modinfo"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("kmod: %w", err)
	}
	return ParseBuiltinModinfo(data), true, nil
}

// ParseBuiltinModinfo reads the aliases of modules.builtin.modinfo.
func ParseBuiltinModinfo(data []byte) []Alias {
	var out []Alias
	for _, e := range bytes.Split(data, []byte{0}) {
		kv, v, ok := bytes.Cut(e, []byte("="))
		if !ok {
			continue
		}
		mod, key, ok := bytes.Cut(kv, []byte("."))
		if !ok || string(key) != "alias" || len(v) == 0 || len(out) >= maxAliases {
			continue
		}
		out = append(out, Alias{Pattern: string(v), Module: string(mod)})
	}
	return out
}

// MatchAliases returns the modules whose patterns match any of the
// modaliases, sorted and without repeats.
func MatchAliases(table []Alias, modaliases []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, ma := range modaliases {
		for _, a := range table {
			if key := NormalizeName(a.Module); !seen[key] && Fnmatch(a.Pattern, ma) {
				seen[key] = true
				out = append(out, a.Module)
			}
		}
	}
	sort.Strings(out)
	return out
}

// DeviceModaliases lists the modaliases of the devices present under
// sysfs (normally "/sys"), sorted and without repeats: one per device that
// has one, on any bus.
func DeviceModaliases(sysfs string) ([]string, error) {
	paths, err := filepath.Glob(filepath.Join(sysfs, "bus", "*", "devices", "*", "modalias"))
	if err != nil {
		return nil, err
	}
	if len(paths) > maxDevices {
		return nil, fmt.Errorf("kmod: more than %d devices under %s", maxDevices, sysfs)
	}
	seen := map[string]bool{}
	var out []string
	for _, p := range paths {
		ma, err := ReadModalias(p)
		if err != nil || ma == "" || seen[ma] {
			continue // a device that went away, or has none
		}
		seen[ma] = true
		out = append(out, ma)
	}
	sort.Strings(out)
	return out, nil
}

// ReadModalias reads one modalias file (a device's, or a net interface's
// device/modalias), bounded.
func ReadModalias(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	buf := make([]byte, maxModaliasLen+1)
	n, _ := f.Read(buf)
	if n > maxModaliasLen {
		return "", fmt.Errorf("%s: more than %d bytes", p, maxModaliasLen)
	}
	return strings.TrimSpace(string(buf[:n])), nil
}

// ResolveAliases indexes dir once, matches its alias table against the
// modaliases and returns the matching modules with their dependencies, in
// load order. A matching module whose dependencies cannot be resolved is
// an error; the others are still returned.
func ResolveAliases(dir string, modaliases []string) ([]Module, error) {
	ix, err := newIndex(dir)
	if err != nil {
		return nil, err
	}
	table, aerr := ix.aliases()
	o := newOrderer(ix)
	errs := []error{aerr}
	for _, n := range MatchAliases(table, modaliases) {
		if err := o.visit(n, ""); err != nil {
			errs = append(errs, err)
		}
	}
	return o.order, errors.Join(errs...)
}

// Fnmatch matches s against a shell glob as fnmatch(3) without flags does:
// '*' any run of bytes, '?' one byte, '[...]' a set with ranges, negated
// by a leading '!' or '^'; '\' quotes the next byte. kmod matches module
// aliases this way.
func Fnmatch(pattern, s string) bool {
	// Iterative with one backtrack point for the last '*': linear enough
	// for alias patterns, and no recursion an input can deepen.
	px, sx := 0, 0
	starP, starS := -1, 0
	for sx < len(s) {
		if px < len(pattern) {
			switch c := pattern[px]; c {
			case '*':
				starP, starS = px, sx
				px++
				continue
			case '?':
				px++
				sx++
				continue
			case '[':
				if ok, next, valid := matchClass(pattern, px, s[sx]); valid {
					if ok {
						px, sx = next, sx+1
						continue
					}
				} else if s[sx] == '[' { // an unclosed '[' is literal
					px, sx = px+1, sx+1
					continue
				}
			case '\\':
				if px+1 < len(pattern) && pattern[px+1] == s[sx] {
					px, sx = px+2, sx+1
					continue
				}
			default:
				if c == s[sx] {
					px, sx = px+1, sx+1
					continue
				}
			}
		}
		if starP < 0 {
			return false
		}
		starS++
		px, sx = starP+1, starS
	}
	for px < len(pattern) && pattern[px] == '*' {
		px++
	}
	return px == len(pattern)
}

// matchClass matches b against the bracket expression at pattern[i]
// ('['). valid is false when the bracket is not closed.
func matchClass(pattern string, i int, b byte) (ok bool, next int, valid bool) {
	j := i + 1
	neg := false
	if j < len(pattern) && (pattern[j] == '!' || pattern[j] == '^') {
		neg = true
		j++
	}
	first := true
	for j < len(pattern) {
		c := pattern[j]
		if c == ']' && !first {
			return ok != neg, j + 1, true
		}
		first = false
		if c == '\\' && j+1 < len(pattern) {
			j++
			c = pattern[j]
		}
		if j+2 < len(pattern) && pattern[j+1] == '-' && pattern[j+2] != ']' {
			hi := pattern[j+2]
			if c <= b && b <= hi {
				ok = true
			}
			j += 3
			continue
		}
		if c == b {
			ok = true
		}
		j++
	}
	return false, 0, false
}

// Tree is one module directory, indexed once, for repeated coldplug
// rounds (a bus driver loaded in one round shows devices for the next).
// It is safe for concurrent use, and so is a tree Except makes of it.
type Tree struct {
	ix    *index
	table []Alias
	// except, when set (Except), leaves modules out of Has and Resolve.
	except *exceptSet
}

// OpenTree indexes the module directories of one kernel as one (see
// newIndexOf: the first has precedence) and reads their alias tables.
func OpenTree(dirs ...string) (*Tree, error) {
	ix, err := newIndexOf(dirs)
	if err != nil {
		return nil, err
	}
	table, err := ix.aliases()
	if err != nil {
		return nil, err
	}
	return &Tree{ix: ix, table: table}, nil
}

// Aliases is the tree's alias table.
func (t *Tree) Aliases() []Alias { return t.table }

// Has reports whether the tree holds the named module.
func (t *Tree) Has(name string) bool {
	_, ok := t.ix.files[NormalizeName(name)]
	return ok && !t.except.excludes(name)
}

// Except is the tree without the named modules and without every module
// that needs one of them through depends=, directly or not: Has says no
// to them and Resolve leaves them out, whether an alias or a name asks
// for them. A module whose .modinfo cannot be read, or that sits in a
// dependency cycle, is not left out here: Resolve reports it as before.
// Image A's agent loads its devices' drivers from such a tree before the
// ESP modules (ESPModules), so that no part of ESP loads out of its order.
func (t *Tree) Except(names []string) *Tree {
	e := &exceptSet{ix: t.ix, needs: map[string]bool{}}
	for _, n := range names {
		e.needs[NormalizeName(n)] = true
	}
	return &Tree{ix: t.ix, table: t.table, except: e}
}

// exceptSet answers, once per module, whether it needs a left-out one.
// Like the tree, it is asked from several goroutines: mu guards needs.
type exceptSet struct {
	ix    *index
	mu    sync.Mutex
	needs map[string]bool // normalised name -> left out
}

func (e *exceptSet) excludes(name string) bool {
	if e == nil {
		return false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.excludesLocked(name)
}

func (e *exceptSet) excludesLocked(name string) bool {
	key := NormalizeName(name)
	if v, ok := e.needs[key]; ok {
		return v
	}
	e.needs[key] = false // in a cycle: not left out (Resolve reports it)
	m, found, err := e.ix.module(name)
	if !found || err != nil {
		return false
	}
	for _, d := range m.Depends {
		if e.excludesLocked(d) {
			e.needs[key] = true
			return true
		}
	}
	return false
}

// Resolve returns the modules matching modaliases plus the named ones
// (those the tree lacks, or Except left out, are left out), with
// dependencies, in load order.
func (t *Tree) Resolve(modaliases, names []string) ([]Module, error) {
	o := newOrderer(t.ix)
	var errs []error
	want := slices.DeleteFunc(MatchAliases(t.table, modaliases), t.except.excludes)
	for _, n := range names {
		if t.Has(n) {
			want = append(want, n)
		}
	}
	for _, n := range want {
		if err := o.visit(n, ""); err != nil {
			errs = append(errs, err)
		}
	}
	return o.order, errors.Join(errs...)
}

// ResolveAvailable is the package's ResolveAvailable over the tree: a
// requested module the tree lacks is returned in missing.
func (t *Tree) ResolveAvailable(names []string) (mods []Module, missing []string, err error) {
	o := newOrderer(t.ix)
	var errs []error
	for _, n := range names {
		if !t.Has(n) && !t.ix.builtin[NormalizeName(n)] {
			missing = append(missing, n)
			continue
		}
		if err := o.visit(n, ""); err != nil {
			errs = append(errs, err)
		}
	}
	return o.order, missing, errors.Join(errs...)
}

// NamesIn lists the modules found under dir (one of the directories the
// tree was opened with), sorted, including those an earlier directory's
// module of the same name shadows: resolving them loads that one.
func (t *Tree) NamesIn(dir string) []string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil
	}
	out := slices.Clone(t.ix.present[abs])
	sort.Strings(out)
	return out
}
