//go:build !linux

package ike

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"

	"ferry/ipsec/esp"
)

// Userspace needs Linux TUN devices.
type Userspace struct {
	*esp.Plane
	Socket *net.UDPConn
}

// OpenUserspace is Linux-only.
func OpenUserspace(netip.Addr, uint16, string, int, netip.Prefix, *slog.Logger) (*Userspace, error) {
	return nil, errors.New("ike: user-space ESP over TUN needs Linux")
}

// Run is Linux-only.
func (u *Userspace) Run(context.Context) error { return errors.New("ike: needs Linux") }

// Close is Linux-only.
func (u *Userspace) Close() error { return nil }
