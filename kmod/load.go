package kmod

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
)

// Loader loads modules into the running kernel. The zero value logs nothing
// and goes on past failures.
type Loader struct {
	// Log receives one record per module; nil discards them.
	Log *slog.Logger
	// StopOnError stops at the first module that fails instead of going on
	// with the modules that do not depend on it.
	StopOnError bool

	// finit, release and live replace the syscalls and sysfs in tests.
	finit   func(path string) (already bool, err error)
	release func() (string, error)
	live    func(name string) bool
}

// LoadError is the failure of one module.
type LoadError struct {
	Module string
	Path   string
	Err    error
}

func (e *LoadError) Error() string { return fmt.Sprintf("module %s (%s): %v", e.Module, e.Path, e.Err) }
func (e *LoadError) Unwrap() error { return e.Err }

// LoadAll indexes every module under dir, orders them by their depends=
// fields and loads each with finit_module(2). A module that is already
// loaded counts as loaded. Failures are collected, one error per module with
// its name, path and errno; modules that depend on a failed one are skipped
// with an error naming that dependency. loaded lists the modules present in
// the kernel afterwards, in load order.
func (l Loader) LoadAll(ctx context.Context, dir string) (loaded []string, err error) {
	ix, err := newIndex(dir)
	if err != nil {
		return nil, err
	}
	o := newOrderer(ix)
	var errs []error
	seen := map[error]bool{}
	for _, n := range ix.names() {
		if err := o.visit(n, ""); err != nil && !seen[err] {
			seen[err] = true
			errs = append(errs, err)
			if l.StopOnError {
				return nil, err
			}
		}
	}
	loaded, lerr := l.load(ctx, o.order, ix.info)
	return loaded, errors.Join(append(errs, lerr)...)
}

// Load loads mods, which must be in load order (as Resolve returns them).
func (l Loader) Load(ctx context.Context, mods []Module) (loaded []string, err error) {
	return l.load(ctx, mods, func(name string) Info { return Info{} })
}

func (l Loader) load(ctx context.Context, mods []Module, info func(string) Info) ([]string, error) {
	log := l.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	finit, release, live := l.finit, l.release, l.live
	if finit == nil {
		finit = finitModule
		if live == nil {
			live = moduleLive
		}
	}
	if live == nil {
		live = func(string) bool { return false }
	}
	if release == nil {
		release = Release
	}
	running, _ := release()
	var loaded []string
	var errs []error
	failed := map[string]bool{}
	for _, m := range mods {
		if err := ctx.Err(); err != nil {
			errs = append(errs, fmt.Errorf("kmod: loading stopped before %s: %w", m.Name, err))
			break
		}
		if dep := firstFailed(m.Depends, failed); dep != "" {
			failed[NormalizeName(m.Name)] = true
			errs = append(errs, &LoadError{Module: m.Name, Path: m.Path, Err: fmt.Errorf("not loaded: dependency %s failed", dep)})
			continue
		}
		// A module already live (B loading what A carried after its
		// coldplug loaded most of it) needs no finit_module: the kernel
		// would read and check the whole file only to answer EEXIST,
		// 37 of them 0.5 s under TCG.
		if live(m.Name) {
			log.Debug("module loaded", "module", m.Name, "path", m.Path, "already", true)
			loaded = append(loaded, m.Name)
			continue
		}
		already, err := finit(m.Path)
		if err != nil {
			if built := info(m.Name).Release(); built != "" && running != "" && built != running {
				err = fmt.Errorf("%w (module built for %s, kernel is %s)", err, built, running)
			}
			failed[NormalizeName(m.Name)] = true
			log.Warn("module load failed", "module", m.Name, "path", m.Path, "err", err)
			errs = append(errs, &LoadError{Module: m.Name, Path: m.Path, Err: err})
			if l.StopOnError {
				break
			}
			continue
		}
		log.Debug("module loaded", "module", m.Name, "path", m.Path, "already", already)
		loaded = append(loaded, m.Name)
	}
	return loaded, errors.Join(errs...)
}

func firstFailed(deps []string, failed map[string]bool) string {
	for _, d := range deps {
		if failed[NormalizeName(d)] {
			return d
		}
	}
	return ""
}
