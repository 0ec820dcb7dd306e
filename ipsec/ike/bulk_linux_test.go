package ike

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"ferry/internal/netnstest"
	"ferry/ipsec/dataplane"
	"ferry/ipsec/esp"
)

// BenchmarkBulkTCPUserspaceESPvsPlain sends the same TCP bulk transfer
// over a veth pair directly and through the tunnel, in the same run, and
// reports both rates and their ratio. The tunnel is the product's: two
// daemons with OpenUserspace planes (the agent's, the keeper's and the
// gateway's), an IKE_SA negotiated between them, ESP read off the
// daemon's own port-4500 socket. The TUN MTU fills the veth frame (the
// product's 1400 on 1500). The 1500-byte veth is the realistic case; 9000
// shows what larger packets buy.
func BenchmarkBulkTCPUserspaceESPvsPlain(b *testing.B) {
	for _, mtu := range []int{1500, 9000} {
		b.Run(fmt.Sprintf("mtu%d", mtu), func(b *testing.B) { benchBulk(b, mtu) })
	}
}

func benchBulk(b *testing.B, mtu int) {
	l := newLab(b)
	for _, x := range []struct {
		ns   *netnstest.NS
		link string
	}{{l.p.a, "ikev0"}, {l.p.b, "ikev1"}} {
		x.ns.Do(b, func() { setMTU(b, x.link, mtu) })
	}
	tun := mtu - 20 - 8 - esp.Overhead
	l.gw = startWrapped(b, l.p.b, l.gwCfg, l.n.gwInner, tun, func(u *Userspace) dataplane.DataPlane { return u })
	l.allow.SetRevoker(l.gw.d)
	ini := startWrapped(b, l.p.a, l.initCfg, netip.Prefix{}, tun, func(u *Userspace) dataplane.DataPlane { return u })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ini.d.Connect(ctx, Target{Gateway: l.n.gwOuter, RemoteSubnets: []netip.Prefix{l.n.gwSubnet}, VirtualIP: true}); err != nil {
		b.Fatal(err)
	}
	const n = 64 << 20
	plain := netip.AddrPortFrom(l.n.gwOuter, 5002).String()
	tunnel := netip.AddrPortFrom(l.n.gwInner.Addr(), 5003).String()
	var tp, te time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tp += bulk(b, l.p.a, l.p.b, plain, n)
		te += bulk(b, l.p.a, l.p.b, tunnel, n)
	}
	mbps := func(d time.Duration) float64 { return float64(n) * float64(b.N) / d.Seconds() / 1e6 }
	b.ReportMetric(mbps(tp), "plain_MB/s")
	b.ReportMetric(mbps(te), "esp_MB/s")
	b.ReportMetric(100*mbps(te)/mbps(tp), "esp_%_of_plain")
	if g := l.gw.plane.Stats(); g.RxBytes < n*uint64(b.N) {
		b.Fatalf("the transfer did not go through ESP: gateway %+v", g)
	}
}

func setMTU(t testing.TB, name string, mtu int) {
	t.Helper()
	l, err := netlink.LinkByName(name)
	if err == nil {
		err = netlink.LinkSetMTU(l, mtu)
	}
	if err != nil {
		t.Fatalf("link %s MTU %d: %v", name, mtu, err)
	}
}

// bulk sends n bytes over TCP from namespace from to a listener on addr in
// namespace to and returns how long it took, until the receiver had all.
func bulk(b *testing.B, from, to *netnstest.NS, addr string, n int64) time.Duration {
	b.Helper()
	var ln net.Listener
	var err error
	to.Do(b, func() { ln, err = net.Listen("tcp4", addr) })
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		s, err := ln.Accept()
		if err == nil {
			var k int64
			k, err = io.Copy(io.Discard, s)
			if err == nil && k != n {
				err = fmt.Errorf("received %d bytes, want %d", k, n)
			}
			s.Close()
		}
		done <- err
	}()
	var c net.Conn
	from.Do(b, func() { c, err = net.DialTimeout("tcp4", addr, 5*time.Second) })
	if err != nil {
		b.Fatal(err)
	}
	// A fixed buffer and a discarding reader: this measures the path, not
	// a pattern generator (TestTunnelCarriesTCPByteForByte checks bytes).
	buf := make([]byte, 256<<10)
	start := time.Now()
	for sent := int64(0); sent < n; sent += int64(len(buf)) {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	c.Close()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}
