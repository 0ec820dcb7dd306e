package ike

import (
	"fmt"
	"net/netip"
)

// remoteSetter is a data plane that can move a CHILD_SA to the peer's new
// NAT mapping: ipsec/esp and ipsec/xfrm.
type remoteSetter interface {
	SetRemote(outSPI uint32, to netip.AddrPort) error
}

// peerMoved makes the CHILD_SAs of sa follow the peer to sa.remote, just
// learnt from an authenticated IKE message (RFC 7296 section 2.23), so
// that ESP reaches the peer at once even when only this side sends (a
// user-space ESP plane would otherwise wait for the peer's next ESP
// packet, a kernel one would never move).
func (d *Daemon) peerMoved(sa *ikeSA) {
	d.log.Info("ike: peer moved", "peer", peerName(sa), "to", sa.remote)
	rs, ok := d.cfg.DataPlane.(remoteSetter)
	for _, c := range sa.children {
		if !c.cfg.Encap || c.cfg.Remote == sa.remote {
			continue
		}
		c.cfg.Remote = sa.remote
		if !ok {
			continue
		}
		if err := rs.SetRemote(c.cfg.OutSPI, sa.remote); err != nil {
			d.log.Warn("ike: CHILD_SA cannot follow the peer; it moves at the next rekey", "peer", peerName(sa),
				"spi", fmt.Sprintf("%08x", c.cfg.OutSPI), "to", sa.remote, "err", err)
		}
	}
}
