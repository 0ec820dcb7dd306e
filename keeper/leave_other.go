//go:build !linux

package keeper

import (
	"context"
	"log/slog"
	"time"
)

type mountWatch struct{}

func newMountWatch(string, *slog.Logger) *mountWatch { return &mountWatch{} }

func (w *mountWatch) wait(ctx context.Context, every time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(every):
		return true
	}
}

func (w *mountWatch) close() {}
