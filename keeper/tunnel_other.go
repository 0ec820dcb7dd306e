//go:build !linux

package keeper

import (
	"context"
	"errors"
	"io"
	"log/slog"

	"ferry/ipsec/dataplane"
)

// openKernelPlane: XFRM is Linux's.
func openKernelPlane(ctx context.Context, log *slog.Logger) (interface {
	dataplane.DataPlane
	io.Closer
}, error) {
	return nil, errors.ErrUnsupported
}
