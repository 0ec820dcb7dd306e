//go:build !linux

package rootprep

import (
	"context"
	"errors"
	"io/fs"
)

func copyTree(context.Context, string, string, *progress) (Stats, error) {
	return Stats{}, errors.ErrUnsupported
}

func renameNoReplace(string, string) error { return errors.ErrUnsupported }

func sameDevice(fs.FileInfo, fs.FileInfo) bool { return true }

func lowPriority(fn func() error) error { return fn() }
