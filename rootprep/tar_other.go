//go:build !linux

package rootprep

import (
	"context"
	"errors"
	"io"
)

func tarTree(context.Context, io.Writer, string, *progress) (Stats, error) {
	return Stats{}, errors.ErrUnsupported
}
