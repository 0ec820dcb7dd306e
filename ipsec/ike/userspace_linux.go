package ike

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"

	"ferry/ipsec/esp"
)

// Userspace is a user-space ESP data plane ready for a daemon: a TUN
// device, its router and the port-4500 socket the daemon and the plane
// share. Its embedded esp.Plane is the dataplane.DataPlane to give the
// daemon (it keeps a virtual IP while any CHILD_SA still uses it), with
// Socket as Config.NATSocket: the daemon owns and closes the socket, and
// its read loop there is the plane's ServeUDP.
type Userspace struct {
	*esp.Plane
	Socket *net.UDPConn
	tun    *esp.TUN
	router *esp.NetlinkRouter
}

// OpenUserspace creates TUN device tun (MTU mtu) and the NAT-T socket on
// local:natPort. inner, if valid, is put on the device (a gateway's own
// inner address).
func OpenUserspace(local netip.Addr, natPort uint16, tun string, mtu int, inner netip.Prefix, log *slog.Logger) (*Userspace, error) {
	t, err := esp.OpenTUN(tun, mtu)
	if err != nil {
		return nil, err
	}
	r, err := esp.NewNetlinkRouter(t)
	if err != nil {
		t.Close()
		return nil, err
	}
	c, err := listen(local, natPort)
	if err != nil {
		t.Close()
		return nil, err
	}
	p := esp.New(esp.Config{TUN: t, Conn: c, Router: r, MTU: mtu, Log: log})
	if inner.IsValid() {
		if err := p.AddAddr(inner); err != nil {
			c.Close()
			t.Close()
			return nil, fmt.Errorf("ike: inner address %s on %s: %w", inner, tun, err)
		}
	}
	return &Userspace{Plane: p, Socket: c, tun: t, router: r}, nil
}

// Run moves outbound packets until ctx ends.
func (u *Userspace) Run(ctx context.Context) error { return u.Plane.Run(ctx) }

// Teardown ends the lease: the plane's routes, virtual IPs and guards go
// (esp.Plane.Teardown, while the router's handle is open), then Close.
func (u *Userspace) Teardown(ctx context.Context) error {
	err := u.Plane.Teardown(ctx)
	return errors.Join(err, u.Close())
}

// Close removes the SAs and closes the device. The guards stay (see
// dataplane.DataPlane): with the device gone, they fail what the device's
// routes carried.
func (u *Userspace) Close() error {
	u.Plane.Close()
	u.router.H.Close()
	return u.tun.Close()
}
