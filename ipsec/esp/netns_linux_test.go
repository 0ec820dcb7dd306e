package esp

import (
	"context"
	"net"
	"net/netip"
	"testing"

	"ferry/internal/netnstest"
	"ferry/ipsec/dataplane"
)

// tunMTU leaves room for outer IPv4 (20), UDP (8) and ESP (Overhead) in a
// veth frame of mtu bytes.
func tunMTU(mtu int) int { return mtu - 20 - 8 - Overhead }

// end is one side of the test topology: a namespace with a veth end, a TUN
// device and a Plane serving UDP 4500.
type end struct {
	ns    *netnstest.NS
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
	a, b = &end{outer: netip.MustParseAddr("10.32.0.1")}, &end{outer: netip.MustParseAddr("10.32.0.2")}
	for _, e := range []*end{a, b} {
		e.ns = netnstest.New(t, "esp")
	}
	netnstest.Veth(t, netnstest.End{NS: a.ns, Name: "espv0", MTU: mtu, Addr: netip.PrefixFrom(a.outer, 24)},
		netnstest.End{NS: b.ns, Name: "espv1", MTU: mtu, Addr: netip.PrefixFrom(b.outer, 24)})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	for _, e := range []*end{a, b} {
		e.ns.Do(t, func() { e.start(t, ctx, tunMTU(mtu)) })
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

// start runs in e.ns, its veth end up and addressed.
func (e *end) start(t testing.TB, ctx context.Context, mtu int) {
	t.Helper()
	var err error
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
	go e.plane.ServeUDP(e.conn, nil)
	t.Cleanup(func() { e.plane.Close(); e.tun.Close(); e.conn.Close(); r.H.Close() })
}
