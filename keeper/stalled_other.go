//go:build !linux

package keeper

import (
	"errors"
	"log/slog"
)

// newUnstaller: sock_diag is Linux's; elsewhere the first recovery logs
// that connections resume on their own.
func newUnstaller(log *slog.Logger) *unstaller {
	return &unstaller{
		list:    func() ([]tcpConn, error) { return nil, errors.ErrUnsupported },
		destroy: func(tcpConn) error { return errors.ErrUnsupported },
		log:     log,
	}
}
