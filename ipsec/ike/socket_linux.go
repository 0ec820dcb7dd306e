package ike

import (
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// prepareKernelSockets readies the IKE sockets for a kernel data plane:
// both are exempt from the tunnel policies (per-socket bypass, or IKE
// would be tunnelled into itself) and the port-4500 socket gets
// UDP_ENCAP_ESPINUDP so the kernel takes the ESP datagrams and leaves the
// marked IKE ones to us (RFC 3948).
func (d *Daemon) prepareKernelSockets() error {
	for _, c := range []*net.UDPConn{d.conn, d.natc} {
		if err := withFD(c, func(fd uintptr) error { return d.cfg.DataPlane.BypassSocket(fd) }); err != nil {
			return fmt.Errorf("ike: bypass policy for %s: %w", c.LocalAddr(), err)
		}
	}
	err := withFD(d.natc, func(fd uintptr) error {
		return unix.SetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_ENCAP, unix.UDP_ENCAP_ESPINUDP)
	})
	if err != nil {
		return fmt.Errorf("ike: setsockopt(%s, UDP_ENCAP, ESPINUDP): %w", d.natc.LocalAddr(), err)
	}
	return nil
}

func withFD(c *net.UDPConn, f func(fd uintptr) error) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = f(fd) }); err != nil {
		return err
	}
	return ferr
}
