package ike

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"ferry/ipsec/dataplane"
)

// The IKE sockets, ports 500 and 4500 (RFC 3948: a non-ESP marker of
// four zero octets before IKE on port 4500, ESP without it).

// espServer is implemented by data planes that read ESP off the daemon's
// port-4500 socket themselves (ipsec/esp's Plane.ServeUDP, batched, with
// UDP_GRO) and hand the IKE messages they find there back to the daemon;
// a kernel data plane takes its ESP off the socket by itself
// (UDP_ENCAP_ESPINUDP).
type espServer interface {
	ServeUDP(conn *net.UDPConn, ike func(msg []byte, from netip.AddrPort)) error
}

// listen opens a UDP socket on a and port with a 1 MiB receive buffer.
func listen(a netip.Addr, port uint16) (*net.UDPConn, error) {
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, port)))
	if err != nil {
		return nil, fmt.Errorf("ike: listen on %s port %d: %w", a, port, err)
	}
	c.SetReadBuffer(1 << 20)
	return c, nil
}

// NATConn is the port-4500 socket; a user-space ESP data plane sends on it.
func (d *Daemon) NATConn() *net.UDPConn { return d.natc }

// serve reads c until it is closed (shutdown closes it, after the
// DELETEs have left on it), handing IKE messages to receive in the order
// they came. Port 4500 (nat) carries ESP too: with a user-space plane the
// plane's inbound path reads the socket and gives the IKE messages back;
// with a kernel plane the kernel took the ESP and what is left here is
// IKE with its non-ESP marker and NAT-T keepalives.
func (d *Daemon) serve(ctx context.Context, c *net.UDPConn, nat bool) error {
	ike := func(msg []byte, from netip.AddrPort) { d.receive(msg, from, nat) }
	var err error
	if s, ok := d.cfg.DataPlane.(espServer); ok && nat {
		err = s.ServeUDP(c, ike)
	} else {
		err = readIKE(c, nat, ike)
	}
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("ike: read %s: %w", c.LocalAddr(), err)
}

// readIKE reads c until it fails, giving each IKE message (a copy, the
// non-ESP marker stripped on port 4500) to ike.
func readIKE(c *net.UDPConn, nat bool, ike func(msg []byte, from netip.AddrPort)) error {
	buf := make([]byte, 65536)
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			return err
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		msg := buf[:n]
		if nat {
			kind, m := dataplane.Classify(msg)
			if kind != dataplane.IKE {
				continue
			}
			msg = m
		}
		ike(append([]byte(nil), msg...), from)
	}
}

// send writes datagrams to the peer on the SA's current port.
func (d *Daemon) send(sa *ikeSA, dgrams [][]byte) {
	sa.lastSend = time.Now()
	for _, b := range dgrams {
		d.sendTo(b, sa.remote, sa.natT)
	}
}

// sendTo writes one IKE message to an address, with the non-ESP marker on
// port 4500.
func (d *Daemon) sendTo(b []byte, to netip.AddrPort, nat bool) {
	var err error
	if nat {
		_, err = d.natc.WriteToUDPAddrPort(append([]byte{0, 0, 0, 0}, b...), to)
	} else {
		_, err = d.conn.WriteToUDPAddrPort(b, to)
	}
	if err != nil {
		d.log.Debug("ike: send failed", "to", to, "err", err)
	}
}

// localAddr is our address and IKE port, 4500 with NAT-T.
func (d *Daemon) localAddr(nat bool) netip.AddrPort {
	if nat {
		return netip.AddrPortFrom(d.cfg.Local, d.cfg.NATPort)
	}
	return netip.AddrPortFrom(d.cfg.Local, d.cfg.Port)
}
