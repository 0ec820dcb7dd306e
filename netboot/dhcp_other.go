//go:build !linux

package netboot

import (
	"context"
	"errors"
)

func (s *Server) serveDHCP(ctx context.Context) error {
	return errors.New("netboot: the DHCP server needs Linux (SO_BINDTODEVICE)")
}
