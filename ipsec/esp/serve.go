package esp

import (
	"net"
	"net/netip"

	"ferry/ipsec/dataplane"
)

// ServeUDP is the plane's inbound path: the read loop of the port-4500
// socket it shares with an IKE daemon (ipsec/ike runs it on the daemon's
// socket). ESP datagrams are decrypted and checked here and their inner
// packets written to the TUN device; IKE messages (non-ESP marker
// stripped, a copy) go to ike, in the order they came, from this
// goroutine; keepalives and runts are dropped. ike may be nil. Source
// addresses are given unmapped (a dual-stack socket reads IPv4 peers as
// ::ffff:a.b.c.d). Drops are counted in Stats.
//
// ServeUDP returns the read error once conn fails or is closed. It never
// closes conn: its owner does (an IKE daemon still sends its DELETEs on it
// after its context ends).
//
// ServeUDP turns on UDP_GRO on conn where the kernel has it (Linux 5.0+):
// one read then brings a peer's whole GSO send, which is cut here back
// into datagrams (each classified on its own, IKE included), and the inner
// packets of one read are written to the TUN device together, a TCP flow's
// run merged into one super-segment (flush). Where UDP_GRO is refused,
// each read is one datagram and the same code runs on it.
func (p *Plane) ServeUDP(conn *net.UDPConn, ike func(msg []byte, from netip.AddrPort)) error {
	gro := enableUDPGRO(conn)
	p.log.Info("esp: reading ESP", "socket", conn.LocalAddr(), "udp_gro", gro)
	buf, oob := make([]byte, 65536), make([]byte, 64)
	var rx rxBatch
	for {
		n, oobn, _, from, err := conn.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			return err
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		size := n
		if s := udpGROSize(oob[:oobn]); gro && s > 0 {
			size = s
		}
		for off := 0; off < n; off += size {
			switch kind, msg := dataplane.Classify(buf[off:min(off+size, n)]); kind {
			case dataplane.ESP:
				p.input(&rx, msg, from) // counted in Stats
			case dataplane.IKE:
				if ike != nil {
					ike(append([]byte(nil), msg...), from)
				}
			}
		}
		p.flush(&rx)
	}
}
