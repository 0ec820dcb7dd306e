package keeper

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// newUnstaller resets connections through sock_diag (the inet_diag and
// tcp_diag modules, SOCK_DESTROY from CONFIG_INET_DIAG_DESTROY). Each
// call opens its netlink socket in the calling thread's network
// namespace; the tunnel is IPv4, so are the connections looked at.
func newUnstaller(log *slog.Logger) *unstaller {
	return &unstaller{list: listTCP, destroy: destroyTCP, log: log}
}

// listTCP is every IPv4 TCP connection with its tcp_info. A dump the
// kernel interrupted (sockets came and went) is used as far as it went:
// the next recovery looks again.
func listTCP() ([]tcpConn, error) {
	res, err := netlink.SocketDiagTCPInfo(unix.AF_INET)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return nil, fmt.Errorf("sock_diag dump of TCP/IPv4: %w", err)
	}
	conns := make([]tcpConn, 0, len(res))
	for _, r := range res {
		m := r.InetDiagMsg
		if m == nil {
			continue
		}
		l, lok := netip.AddrFromSlice(m.ID.Source.To4())
		rm, rok := netip.AddrFromSlice(m.ID.Destination.To4())
		if !lok || !rok {
			continue
		}
		c := tcpConn{Local: netip.AddrPortFrom(l, m.ID.SourcePort), Remote: netip.AddrPortFrom(rm, m.ID.DestinationPort),
			State: m.State}
		if i := r.TCPInfo; i != nil {
			c.Backoff, c.Retransmits, c.Unacked = i.Backoff, i.Retransmits, i.Unacked
		}
		conns = append(conns, c)
	}
	return conns, nil
}

// destroyTCP aborts c as `ss -K` does: its owner gets ECONNABORTED and
// the peer a reset.
func destroyTCP(c tcpConn) error {
	err := netlink.SocketDestroy(net.TCPAddrFromAddrPort(c.Local), net.TCPAddrFromAddrPort(c.Remote))
	if err != nil {
		return fmt.Errorf("sock_diag SOCK_DESTROY %s -> %s: %w", c.Local, c.Remote, err)
	}
	return nil
}
