package keeper

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"testing"

	"github.com/vishvananda/netlink"

	"ferry/internal/netnstest"
)

// Addresses of the pool test: a peer's virtual IP (another lent server of
// vipPool, never this one's: the gateway hands out the pool from its
// start), a control just outside the pool, and the marker that ends each
// count; the last two leave by the default route, the lender LAN's router.
var (
	poolPeer    = netip.MustParseAddr("10.50.200.77")
	poolControl = netip.MustParseAddr("10.50.201.1")
	poolMarker  = netip.MustParseAddr("192.0.2.1")
	poolAndNext = netip.MustParsePrefix("10.50.200.0/23")
)

// A lent server's packet to another lent server's virtual IP (the tunnel
// pool, which the gateway's selectors do not cover) never leaves in clear
// on the lender LAN, on either data plane: not before the first SA, not
// with the tunnel up, not after the tunnel and its process are gone. The
// control to an address beyond the pool shows the sniffer sees clear text.
func TestNothingToThePoolLeavesInClear(t *testing.T) {
	for _, plane := range []DataPlane{DataPlaneKernel, DataPlaneUser} {
		t.Run(string(plane), func(t *testing.T) {
			srv, _, id := lentServerAndGateway(t)
			srv.Do(t, func() {
				if plane == DataPlaneKernel && probeESP() != nil {
					t.Skip("this kernel has no ESP")
				}
				// A lent server's default route: the lender LAN's router
				// (here the gateway's host, which would forward it).
				if err := netlink.RouteAdd(&netlink.Route{Gw: gwOuter.AsSlice()}); err != nil {
					t.Fatal(err)
				}
			})
			id.TunnelPool = vipPool
			sniff := srv.Sniff(t, "kpv0")
			ctx := context.Background()
			var tun *Tunnel
			var err error
			srv.Do(t, func() { tun, err = OpenTunnel(ctx, id, plane, slog.New(slog.DiscardHandler)) })
			if err != nil {
				t.Fatal(err)
			}
			closed := false
			defer func() {
				if !closed {
					tun.Close(ctx)
				}
			}()
			inClear := func(when string) {
				t.Helper()
				sendProbes(t, srv)
				if n := sniff.CountUntil(t, poolAndNext, poolMarker); n != 1 {
					t.Errorf("%s: %d packets to %s in clear on the LAN, want 1 (the control to %s; none to the pool %s)",
						when, n, poolAndNext, poolControl, vipPool)
				}
			}
			inClear("before the first SA")
			srv.Do(t, func() { err = tun.Connect(ctx) })
			if err != nil {
				t.Fatal(err)
			}
			if st := tun.Status(); !st.Up || !vipPool.Contains(netip.MustParseAddr(st.VirtualIP)) {
				t.Fatalf("tunnel %+v, want up with an address of %s", st, vipPool)
			}
			inClear("tunnel up")
			tun.Close(ctx)
			closed = true
			inClear("tunnel closed")
		})
	}
}

// sendProbes sends from srv one UDP datagram to the peer's virtual IP
// (twice: from the default source and from the LAN address), one to the
// control, then the marker. A send to the pool must fail: the guard at
// work (EACCES from a prohibit route, EPERM from a block policy).
func sendProbes(t *testing.T, srv *netnstest.NS) {
	t.Helper()
	send := func(from netip.Addr, to netip.Addr) error {
		var laddr *net.UDPAddr
		if from.IsValid() {
			laddr = &net.UDPAddr{IP: from.AsSlice()}
		}
		c, err := net.DialUDP("udp4", laddr, &net.UDPAddr{IP: to.AsSlice(), Port: 7070})
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("peer?"))
		return err
	}
	srv.Do(t, func() {
		for _, from := range []netip.Addr{{}, serverOuter} {
			if err := send(from, poolPeer); err != nil {
				t.Logf("to the peer %s from %v: %v (dropped)", poolPeer, from, err)
			} else {
				t.Errorf("to the peer %s from %v: sent, want the send refused", poolPeer, from)
			}
		}
		for _, to := range []netip.Addr{poolControl, poolMarker} {
			if err := send(netip.Addr{}, to); err != nil {
				t.Fatalf("to %s: %v", to, err)
			}
		}
	})
}
