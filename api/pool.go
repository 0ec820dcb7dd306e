package api

import (
	"fmt"
	"net/netip"
)

// ParseTunnelPool reads a lease's tunnel_pool: the IPv4 prefix the
// borrower's gateway gives the lent servers' virtual IPs from (the
// borrower's `tunnel_pool`, the gateway's `pool`). Any size from /0 to
// /32 parses; host bits are cleared. IPv6 is refused: the tunnel carries
// IPv4 only (an IPv4 virtual IP and IPv4 selectors), and both data
// planes guard IPv4 prefixes only.
func ParseTunnelPool(s string) (netip.Prefix, error) {
	if len(s) > 64 {
		return netip.Prefix{}, fmt.Errorf("tunnel pool of %d bytes: want an IPv4 prefix such as 10.8.1.0/24", len(s))
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("tunnel pool %q: want an IPv4 prefix such as 10.8.1.0/24", s)
	}
	if !p.Addr().Is4() {
		return netip.Prefix{}, fmt.Errorf("tunnel pool %q: want an IPv4 prefix (the tunnel carries IPv4 only)", s)
	}
	return p.Masked(), nil
}

// PathAddr is an address the lent server must keep reaching outside the
// tunnel, and what it is ("the gateway", "the lender").
type PathAddr struct {
	Name string
	Addr netip.Addr
}

// CheckTunnelPool refuses a pool that holds one of addrs (invalid ones
// are skipped): the pool is guarded fail closed on the lent server, so
// such a pool would cut the tunnel's own path (the gateway) or the
// server's reports and enrollment (the lender). The error names both.
func CheckTunnelPool(pool netip.Prefix, addrs ...PathAddr) error {
	for _, a := range addrs {
		if a.Addr.IsValid() && pool.Contains(a.Addr.Unmap()) {
			return fmt.Errorf("tunnel pool %s holds %s (%s): its fail-closed guard would cut the path outside the tunnel", pool, a.Name, a.Addr)
		}
	}
	return nil
}
