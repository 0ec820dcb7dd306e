//go:build !linux

package disks

import (
	"errors"
	"log/slog"
)

// MarkAllReadOnly is Linux-only.
func MarkAllReadOnly(*slog.Logger) ([]string, error) {
	return nil, errors.New("disks: MarkAllReadOnly needs Linux")
}

// Watcher is Linux-only; elsewhere it watches nothing.
type Watcher struct{}

// Watch is Linux-only; elsewhere it watches nothing.
func Watch([]string, *slog.Logger, func(string)) *Watcher { return &Watcher{} }

// Late returns nothing: nothing was watched.
func (*Watcher) Late() []string { return nil }

// Stop returns nothing: nothing was watched.
func (*Watcher) Stop() []string { return nil }
