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

// espInput is implemented by data planes that take ESP datagrams from the
// daemon's port-4500 socket (ipsec/esp); the kernel demultiplexes by
// itself.
type espInput interface {
	Input(pkt []byte, from netip.AddrPort) error
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

// serve reads c until it is closed, handing IKE messages to receive and,
// on port 4500 (nat), ESP to a user-space data plane.
func (d *Daemon) serve(ctx context.Context, c *net.UDPConn, nat bool) error {
	buf := make([]byte, 65536)
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("ike: read %s: %w", c.LocalAddr(), err)
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		pkt := buf[:n]
		if nat {
			kind, msg := dataplane.Classify(pkt)
			switch kind {
			case dataplane.ESP:
				if in, ok := d.cfg.DataPlane.(espInput); ok {
					in.Input(pkt, from)
				}
				continue
			case dataplane.IKE:
				pkt = msg
			default:
				continue
			}
		}
		d.receive(append([]byte(nil), pkt...), from, nat)
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
