package esp

import (
	"context"
	"net"
	"net/netip"

	"ferry/ipsec/dataplane"
)

// ServeUDP is the demultiplexing loop for a port-4500 socket shared by IKE
// and ESP: ESP datagrams go to the plane (as Input would take them), IKE
// messages (non-ESP marker stripped) to ike, keepalives and runts are
// dropped. It returns when ctx ends or the socket fails. An IKE daemon may
// run this loop, or its own loop calling dataplane.Classify and Input. ike
// may be nil. ServeUDP closes conn when ctx ends, to unblock its read.
//
// ServeUDP turns on UDP_GRO on conn where the kernel has it: one read then
// brings a peer's whole GSO send, which is cut here back into datagrams
// (each classified on its own, IKE included), and the inner packets of
// one read are written to the TUN device together (see flush).
func ServeUDP(ctx context.Context, conn *net.UDPConn, p *Plane, ike func(msg []byte, from netip.AddrPort)) error {
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	gro := enableUDPGRO(conn)
	buf, oob := make([]byte, 65536), make([]byte, 64)
	var rx rxBatch
	for {
		n, oobn, _, from, err := conn.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		size := n
		if s := udpGROSize(oob[:oobn]); gro && s > 0 {
			size = s
		}
		for off := 0; off < n; off += size {
			switch kind, msg := dataplane.Classify(buf[off:min(off+size, n)]); kind {
			case dataplane.ESP:
				p.inputBatched(&rx, msg, from) // counted in Stats
			case dataplane.IKE:
				if ike != nil {
					ike(append([]byte(nil), msg...), from)
				}
			}
		}
		p.flush(&rx)
	}
}
