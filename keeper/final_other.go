//go:build !linux

package keeper

import (
	"errors"
	"log/slog"
)

// FinalShutdown is Linux-only.
func FinalShutdown(string, *slog.Logger) error {
	return errors.New("keeper: FinalShutdown needs Linux")
}
