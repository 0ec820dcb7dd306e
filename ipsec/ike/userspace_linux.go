package ike

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"

	"ferry/ipsec/dataplane"
	"ferry/ipsec/esp"
)

// Userspace is a user-space ESP data plane ready for a daemon: a TUN
// device, its router and the port-4500 socket the daemon and the plane
// share.
//
// Userspace is itself the dataplane.DataPlane to give the daemon: it
// wraps the esp.Plane and keeps the virtual IP on the device while any
// CHILD_SA still uses it (esp.Plane removes it, and with it the routes
// through it, with the first SA that goes, which after a rekey is the old
// one while the new one still needs them).
type Userspace struct {
	*esp.Plane
	Socket *net.UDPConn
	tun    *esp.TUN
	router *esp.NetlinkRouter

	mu   sync.Mutex
	vips map[uint32]dataplane.ChildSA // SAs with a virtual IP, by inbound SPI
}

// Install implements dataplane.DataPlane.
func (u *Userspace) Install(ctx context.Context, sa dataplane.ChildSA) error {
	if err := u.Plane.Install(ctx, sa); err != nil {
		return err
	}
	if sa.VirtualIP.IsValid() {
		u.mu.Lock()
		u.vips[sa.InSPI] = sa
		u.mu.Unlock()
	}
	return nil
}

// Remove implements dataplane.DataPlane.
func (u *Userspace) Remove(ctx context.Context, inSPI, outSPI uint32) error {
	err := u.Plane.Remove(ctx, inSPI, outSPI)
	u.mu.Lock()
	defer u.mu.Unlock()
	gone, ok := u.vips[inSPI]
	delete(u.vips, inSPI)
	if !ok {
		return err
	}
	for _, sa := range u.vips {
		if sa.VirtualIP == gone.VirtualIP {
			// Deleting the address also took the routes using it as
			// source: put both back for the SA that remains.
			if aerr := u.restore(sa); aerr != nil {
				return fmt.Errorf("ike: keep virtual IP %s after removing SA %08x: %w", sa.VirtualIP, inSPI, aerr)
			}
			break
		}
	}
	return err
}

func (u *Userspace) restore(sa dataplane.ChildSA) error {
	if err := u.router.AddAddr(sa.VirtualIP); err != nil {
		return err
	}
	for _, p := range sa.TSRemote {
		if err := u.router.AddRoute(p); err != nil {
			return err
		}
	}
	return nil
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
	if inner.IsValid() {
		if err := r.AddAddr(inner); err != nil {
			t.Close()
			return nil, fmt.Errorf("ike: inner address %s on %s: %w", inner, tun, err)
		}
	}
	c, err := listen(local, natPort)
	if err != nil {
		t.Close()
		return nil, err
	}
	p := esp.New(esp.Config{TUN: t, Conn: c, Router: r, MTU: mtu, Log: log})
	return &Userspace{Plane: p, Socket: c, tun: t, router: r, vips: map[uint32]dataplane.ChildSA{}}, nil
}

// Run moves outbound packets until ctx ends.
func (u *Userspace) Run(ctx context.Context) error { return u.Plane.Run(ctx) }

// Close removes the SAs and closes the device.
func (u *Userspace) Close() error {
	u.Plane.Close()
	u.router.H.Close()
	return u.tun.Close()
}
