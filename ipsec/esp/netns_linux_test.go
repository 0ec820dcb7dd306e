package esp

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"ferry/ipsec/dataplane"
)

// tunMTU leaves room for outer IPv4 (20), UDP (8) and ESP (Overhead) in a
// veth frame of mtu bytes.
func tunMTU(mtu int) int { return mtu - 20 - 8 - Overhead }

// inNS runs f with the calling goroutine's thread in ns.
func inNS(t testing.TB, ns netns.NsHandle, f func()) {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	if err := netns.Set(ns); err != nil {
		t.Fatal(err)
	}
	defer netns.Set(orig)
	f()
}

// end is one side of the test topology: a namespace with a veth end, a TUN
// device and a Plane serving UDP 4500.
type end struct {
	ns    netns.NsHandle
	plane *Plane
	tun   *TUN
	conn  *net.UDPConn
	outer netip.Addr
}

// topology makes two namespaces joined by a veth pair (10.32.0.1 and
// 10.32.0.2), each with a user-space ESP plane, and installs a CHILD_SA
// from side a (inner 10.32.1.1) to side b (inner 10.32.2.1).
func topology(t testing.TB, mtu int) (a, b *end) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces")
	}
	a, b = &end{outer: netip.MustParseAddr("10.32.0.1")}, &end{outer: netip.MustParseAddr("10.32.0.2")}
	for i, e := range []*end{a, b} {
		e.ns = newNS(t, fmt.Sprintf("esp%d%c", os.Getpid(), 'a'+i))
	}
	inNS(t, a.ns, func() {
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "espv0", MTU: mtu}, PeerName: "espv1", PeerMTU: uint32(mtu), PeerNamespace: netlink.NsFd(int(b.ns))}
		if err := netlink.LinkAdd(veth); err != nil {
			t.Fatalf("veth: %v", err)
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	for i, e := range []*end{a, b} {
		inNS(t, e.ns, func() { e.start(t, ctx, fmt.Sprintf("espv%d", i), tunMTU(mtu)) })
	}
	sa := dataplane.ChildSA{
		InSPI: 0xc1000001, OutSPI: 0xc2000001,
		Local: netip.AddrPortFrom(a.outer, 4500), Remote: netip.AddrPortFrom(b.outer, 4500),
		Encap: true, Alg: dataplane.AlgAES256GCM16, InKey: key(3), OutKey: key(4),
		TSLocal:   []netip.Prefix{netip.MustParsePrefix("10.32.1.1/32")},
		TSRemote:  []netip.Prefix{netip.MustParsePrefix("10.32.2.0/24")},
		VirtualIP: netip.MustParsePrefix("10.32.1.1/32"),
	}
	sb := mirror(sa)
	sb.VirtualIP = netip.MustParsePrefix("10.32.2.1/32") // the gateway's own inner address
	for _, x := range []struct {
		e  *end
		sa dataplane.ChildSA
	}{{a, sa}, {b, sb}} {
		if err := x.e.plane.Install(ctx, x.sa); err != nil {
			t.Fatal(err)
		}
	}
	return a, b
}

func newNS(t testing.TB, name string) netns.NsHandle {
	t.Helper()
	runtime.LockOSThread()
	orig, _ := netns.Get()
	ns, err := netns.NewNamed(name)
	netns.Set(orig)
	orig.Close()
	runtime.UnlockOSThread()
	if err != nil {
		t.Fatalf("netns %s: %v", name, err)
	}
	t.Cleanup(func() { ns.Close(); netns.DeleteNamed(name) })
	return ns
}

func (e *end) start(t testing.TB, ctx context.Context, veth string, mtu int) {
	t.Helper()
	lo, _ := netlink.LinkByName("lo")
	netlink.LinkSetUp(lo)
	l, err := netlink.LinkByName(veth)
	if err != nil {
		t.Fatal(err)
	}
	netlink.AddrAdd(l, &netlink.Addr{IPNet: &net.IPNet{IP: e.outer.AsSlice(), Mask: net.CIDRMask(24, 32)}})
	if err := netlink.LinkSetUp(l); err != nil {
		t.Fatal(err)
	}
	if e.tun, err = OpenTUN("esp0", mtu); err != nil {
		t.Fatal(err)
	}
	r, err := NewNetlinkRouter(e.tun)
	if err != nil {
		t.Fatal(err)
	}
	if e.conn, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(e.outer, 4500))); err != nil {
		t.Fatal(err)
	}
	e.conn.SetReadBuffer(4 << 20)
	e.conn.SetWriteBuffer(4 << 20)
	e.plane = New(Config{TUN: e.tun, Conn: e.conn, Router: r, MTU: mtu})
	go e.plane.Run(ctx)
	go ServeUDP(ctx, e.conn, e.plane, nil)
	t.Cleanup(func() { e.plane.Close(); e.tun.Close(); e.conn.Close(); r.H.Close() })
}
