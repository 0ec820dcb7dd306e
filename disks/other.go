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
