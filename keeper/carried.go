package keeper

import "net/netip"

// carries reports whether the tunnel brings packets from addr: addr is in
// the remote traffic selectors of a CHILD_SA of an established IKE SA,
// the borrower's subnets. A listener on the virtual IP accepts only such
// peers (listen.go): the virtual IP is a local address, and Linux answers
// for it on every interface.
func (t *Tunnel) carries(addr netip.Addr) bool {
	addr = addr.Unmap()
	for _, p := range t.remoteSelectors() {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// remoteSelectors are the remote traffic selectors of the CHILD_SAs of
// the established IKE SAs: what the tunnel carries now.
func (t *Tunnel) remoteSelectors() []netip.Prefix {
	var ps []netip.Prefix
	for _, sa := range t.d.Status() {
		if !sa.Opened || sa.State != "established" { // ours, whichever end rekeyed
			continue
		}
		for _, c := range sa.Children {
			ps = append(ps, c.TSRemote...)
		}
	}
	return ps
}
