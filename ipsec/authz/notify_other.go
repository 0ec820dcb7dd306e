//go:build !linux

package authz

import (
	"context"
	"errors"
)

// fileChanges has no inotify here: the periodic check alone reloads.
func fileChanges(ctx context.Context, path string) (*changes, error) {
	return nil, errors.New("authz: no inotify on this system")
}
