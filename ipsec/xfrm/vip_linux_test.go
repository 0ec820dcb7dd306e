package xfrm

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"ferry/ipsec/dataplane"
)

// vipLab is a fresh namespace with a veth pair whose one end, 10.34.5.1/24,
// leads to the "gateway" 10.34.5.2, as eth0 does in the QEMU guest.
func vipLab(t *testing.T) (*hostRoutes, dataplane.ChildSA, netlink.Link) {
	t.Helper()
	// Only route: with no families the library opens every one it knows,
	// and a kernel without nfnetlink loaded (the QEMU guest) refuses.
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatalf("netlink handle: %v", err)
	}
	t.Cleanup(h.Close)
	name := fmt.Sprintf("xfrmv%d", os.Getpid()%100000)
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: name + "p"}
	if err := h.LinkAdd(veth); err != nil {
		t.Fatalf("veth %s: %v", name, err)
	}
	l, _ := h.LinkByName(name)
	p, _ := h.LinkByName(name + "p")
	own := &net.IPNet{IP: net.IPv4(10, 34, 5, 1), Mask: net.CIDRMask(24, 32)}
	if err := h.AddrAdd(l, &netlink.Addr{IPNet: own}); err != nil {
		t.Fatalf("address %v on %s: %v", own, name, err)
	}
	h.LinkSetUp(p)
	if err := h.LinkSetUp(l); err != nil {
		t.Fatalf("%s up: %v", name, err)
	}
	sa := dataplane.ChildSA{
		Remote:    netip.MustParseAddrPort("10.34.5.2:4500"),
		VirtualIP: netip.MustParsePrefix("10.34.6.9/32"),
		TSRemote:  []netip.Prefix{netip.MustParsePrefix("10.34.7.0/24")},
	}
	return newHostRoutes(h, slog.New(slog.DiscardHandler)), sa, l
}

// sourceTowards is the source address the kernel picks for dst ("" when
// there is no route).
func sourceTowards(h *netlink.Handle, dst string) string {
	rs, err := h.RouteGet(net.ParseIP(dst))
	if err != nil || len(rs) == 0 {
		return ""
	}
	return rs[0].Src.String()
}

func TestVirtualIPIsSourceOfTrafficToRemoteSubnet(t *testing.T) {
	inNewNS(t, func() {
		r, sa, l := vipLab(t)
		if got := sourceTowards(r.h, "10.34.7.5"); got != "" {
			t.Fatalf("before the SA: route to the remote subnet from %q, want none", got)
		}
		if err := r.hold(sa); err != nil {
			t.Fatal(err)
		}
		if got := sourceTowards(r.h, "10.34.7.5"); got != "10.34.6.9" {
			t.Fatalf("traffic to the remote subnet leaves from %q, want the virtual IP 10.34.6.9", got)
		}
		addrs, _ := r.h.AddrList(l, netlink.FAMILY_V4)
		if len(addrs) != 2 {
			t.Fatalf("addresses on the gateway's device: %v, want its own and the virtual IP", addrs)
		}
	})
}

func TestVirtualIPOutlivesRekeyAndGoesWithLastSA(t *testing.T) {
	inNewNS(t, func() {
		r, sa, l := vipLab(t)
		for range 2 { // old and new CHILD_SA after a rekey
			if err := r.hold(sa); err != nil {
				t.Fatal(err)
			}
		}
		r.release(sa)
		if got := sourceTowards(r.h, "10.34.7.5"); got != "10.34.6.9" {
			t.Fatalf("after removing the old SA: source %q, want the virtual IP still", got)
		}
		r.release(sa)
		if got := sourceTowards(r.h, "10.34.7.5"); got != "" {
			t.Fatalf("after the last SA: route from %q remains", got)
		}
		if addrs, _ := r.h.AddrList(l, netlink.FAMILY_V4); len(addrs) != 1 {
			t.Fatalf("after the last SA: addresses %v, want only the device's own", addrs)
		}
	})
}

func TestSelectorHoldingGatewayGetsNoRoute(t *testing.T) {
	inNewNS(t, func() {
		r, sa, _ := vipLab(t)
		sa.TSRemote = []netip.Prefix{netip.MustParsePrefix("10.34.0.0/16")}
		if err := r.hold(sa); err != nil {
			t.Fatal(err)
		}
		if got := sourceTowards(r.h, "10.34.5.2"); got != "10.34.5.1" {
			t.Fatalf("gateway reached from %q, want the device's own 10.34.5.1", got)
		}
		r.release(sa)
		if got := sourceTowards(r.h, "10.34.5.2"); got != "10.34.5.1" {
			t.Fatalf("after release the gateway is reached from %q, want 10.34.5.1", got)
		}
	})
}
