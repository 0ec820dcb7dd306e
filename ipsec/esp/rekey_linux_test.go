package esp

import (
	"context"
	"net/netip"
	"testing"

	"github.com/vishvananda/netlink"

	"ferry/ipsec/dataplane"
)

// rekeyed is sa after a CHILD_SA rekey: new SPIs and keys, the same
// selectors and virtual IP.
func rekeyed(sa dataplane.ChildSA) dataplane.ChildSA {
	sa.InSPI, sa.OutSPI = sa.InSPI+0x100, sa.OutSPI+0x100
	sa.InKey, sa.OutKey = key(7), key(8)
	return sa
}

// deviceState reports whether esp0 in e's namespace has address a and a
// route to dst.
func deviceState(t *testing.T, e *end, a, dst netip.Prefix) (hasAddr, hasRoute bool) {
	t.Helper()
	e.ns.Do(t, func() {
		l, err := netlink.LinkByName("esp0")
		if err != nil {
			t.Fatal(err)
		}
		addrs, err := netlink.AddrList(l, netlink.FAMILY_V4)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range addrs {
			hasAddr = hasAddr || x.IPNet.String() == a.String()
		}
		routes, err := netlink.RouteList(l, netlink.FAMILY_V4)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range routes {
			hasRoute = hasRoute || (r.Dst != nil && r.Dst.String() == dst.String())
		}
	})
	return hasAddr, hasRoute
}

func TestRemovingOldSAAfterRekeyKeepsVirtualIPAndRoutes(t *testing.T) {
	a, _ := topology(t, 1500)
	ctx := context.Background()
	vip, dst := netip.MustParsePrefix("10.32.1.1/32"), netip.MustParsePrefix("10.32.2.0/24")
	old := dataplane.ChildSA{
		InSPI: 0xc1000001, OutSPI: 0xc2000001,
		Local: netip.AddrPortFrom(a.outer, 4500), Remote: netip.MustParseAddrPort("10.32.0.2:4500"),
		Encap: true, Alg: dataplane.AlgAES256GCM16, InKey: key(3), OutKey: key(4),
		TSLocal: []netip.Prefix{vip}, TSRemote: []netip.Prefix{dst}, VirtualIP: vip,
	}
	if err := a.plane.Install(ctx, rekeyed(old)); err != nil {
		t.Fatal(err)
	}
	if err := a.plane.Remove(ctx, old.InSPI, old.OutSPI); err != nil {
		t.Fatal(err)
	}
	if addr, route := deviceState(t, a, vip, dst); !addr || !route {
		t.Fatalf("after removing the old SA of a rekey: virtual IP %v present=%v, route %v present=%v; the new SA needs both", vip, addr, dst, route)
	}
	n := rekeyed(old)
	if err := a.plane.Remove(ctx, n.InSPI, n.OutSPI); err != nil {
		t.Fatal(err)
	}
	// Fail closed: they stay for the lease, so that packets to the remote
	// selector reach the plane (which drops them: no SA) rather than the
	// default route.
	if addr, route := deviceState(t, a, vip, dst); !addr || !route {
		t.Fatalf("after removing the last SA: virtual IP present=%v, route present=%v; want both kept until Teardown", addr, route)
	}
	if err := a.plane.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	if addr, route := deviceState(t, a, vip, dst); addr || route {
		t.Fatalf("after Teardown: virtual IP present=%v, route present=%v; want both gone", addr, route)
	}
}

func TestHeldInnerAddressOutlivesSAsUsingIt(t *testing.T) {
	_, b := topology(t, 1500)
	ctx := context.Background()
	inner, dst := netip.MustParsePrefix("10.32.2.1/32"), netip.MustParsePrefix("10.32.1.1/32")
	if err := b.plane.AddAddr(inner); err != nil {
		t.Fatal(err)
	}
	// topology installed on b an SA whose VirtualIP is the same inner address.
	if err := b.plane.Remove(ctx, 0xc2000001, 0xc1000001); err != nil {
		t.Fatal(err)
	}
	if addr, _ := deviceState(t, b, inner, dst); !addr {
		t.Fatalf("removing the last SA took the held inner address %v off the device", inner)
	}
	b.plane.DelAddr(inner)
	if addr, _ := deviceState(t, b, inner, dst); !addr {
		t.Fatalf("inner address %v, an SA's virtual IP, left the device before the end of the lease", inner)
	}
	if err := b.plane.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	if addr, _ := deviceState(t, b, inner, dst); addr {
		t.Fatalf("inner address %v still on the device after Teardown", inner)
	}
}

func TestAddAddrRefusesNonIPv4(t *testing.T) {
	p := New(Config{TUN: &memTUN{}, Conn: &memConn{}})
	for _, bad := range []netip.Prefix{{}, netip.MustParsePrefix("fd00::1/128")} {
		if err := p.AddAddr(bad); err == nil {
			t.Errorf("AddAddr(%v) accepted", bad)
		}
	}
}
