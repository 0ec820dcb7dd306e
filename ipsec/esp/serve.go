package esp

import (
	"context"
	"net"
	"net/netip"

	"ferry/ipsec/dataplane"
)

// ServeUDP is the demultiplexing loop for a port-4500 socket shared by IKE
// and ESP: ESP datagrams go to p.Input, IKE messages (non-ESP marker
// stripped) to ike, keepalives and runts are dropped. It returns when ctx
// ends or the socket fails. An IKE daemon may run this loop, or its own
// loop calling dataplane.Classify and Input. ike may be nil. ServeUDP
// closes conn when ctx ends, to unblock its read.
func ServeUDP(ctx context.Context, conn *net.UDPConn, p *Plane, ike func(msg []byte, from netip.AddrPort)) error {
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	buf := make([]byte, 65536)
	for {
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		switch kind, msg := dataplane.Classify(buf[:n]); kind {
		case dataplane.ESP:
			p.Input(msg, from) // counted in Stats
		case dataplane.IKE:
			if ike != nil {
				ike(append([]byte(nil), msg...), from)
			}
		}
	}
}
