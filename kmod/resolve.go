package kmod

import (
	"errors"
	"fmt"
	"strings"
)

// Resolve finds the named modules under dir, follows their depends= fields
// transitively and returns them in load order: every module after all of its
// dependencies. The order is deterministic: modules appear in the order they
// are first reached by a depth-first walk of names, each module's
// dependencies taken in depends= order.
//
// '-' and '_' are the same in names. A module listed in
// dir/modules.builtin is part of the kernel and is left out (as is such a
// dependency, though modpost never lists one). A module that
// cannot be found is an error naming it and the module that needs it; so is
// a dependency cycle.
//
// Note that depends= only lists symbol dependencies: a bus driver such as
// virtio_pci, which binds devices rather than exporting symbols to the
// device drivers, must be named explicitly.
func Resolve(dir string, names []string) ([]Module, error) {
	ix, err := newIndex(dir)
	if err != nil {
		return nil, err
	}
	o := newOrderer(ix)
	var errs []error
	for _, n := range names {
		if err := o.visit(n, ""); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return o.order, nil
}

// orderer walks the dependency graph depth first, emitting modules after
// their dependencies and remembering which modules cannot be loaded.
type orderer struct {
	ix     *index
	state  map[string]visitState
	failed map[string]error
	stack  []string
	order  []Module
}

type visitState int

const (
	unvisited visitState = iota
	visiting
	done
	broken
)

func newOrderer(ix *index) *orderer {
	return &orderer{ix: ix, state: map[string]visitState{}, failed: map[string]error{}}
}

// visit orders name and its dependencies. neededBy is the module whose
// depends= named it, or "" for a requested module.
func (o *orderer) visit(name, neededBy string) error {
	key := NormalizeName(name)
	switch o.state[key] {
	case done:
		return nil
	case broken:
		return o.failed[key]
	case visiting:
		i := len(o.stack) - 1
		for i > 0 && NormalizeName(o.stack[i]) != key {
			i--
		}
		cycle := append(append([]string{}, o.stack[i:]...), name)
		return fmt.Errorf("kmod: dependency cycle: %s", strings.Join(cycle, " -> "))
	}
	m, found, err := o.ix.module(name)
	switch {
	case err != nil:
		return o.fail(key, fmt.Errorf("kmod: module %q%s: %w", name, needs(neededBy), err))
	case !found && o.ix.builtin[key]:
		o.state[key] = done
		return nil
	case !found:
		return o.fail(key, fmt.Errorf("kmod: module %q%s not found under %s", name, needs(neededBy), o.ix.dir))
	}
	o.state[key] = visiting
	o.stack = append(o.stack, m.Name)
	for _, d := range m.Depends {
		if err := o.visit(d, m.Name); err != nil {
			o.stack = o.stack[:len(o.stack)-1]
			// A cycle is reported once, at the module that closes it.
			return o.fail(key, err)
		}
	}
	o.stack = o.stack[:len(o.stack)-1]
	o.state[key] = done
	o.order = append(o.order, m)
	return nil
}

func (o *orderer) fail(key string, err error) error {
	o.state[key] = broken
	o.failed[key] = err
	return err
}

func needs(by string) string {
	if by == "" {
		return ""
	}
	return fmt.Sprintf(" (needed by %q)", by)
}
