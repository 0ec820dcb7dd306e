//go:build !linux

package rootprep

import (
	"context"
	"errors"
)

func copyTree(context.Context, string, string, *progress) (Stats, error) {
	return Stats{}, errors.ErrUnsupported
}

func renameNoReplace(string, string) error { return errors.ErrUnsupported }
