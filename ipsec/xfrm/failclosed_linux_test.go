package xfrm

import (
	"context"
	"net"
	"net/netip"
	"os"
	"testing"

	"github.com/vishvananda/netlink"

	"ferry/internal/netnstest"
	"ferry/ipsec/dataplane"
)

// lan is the lent server (ns a, 10.32.5.1) on a LAN with its gateway
// (ns b, 10.32.5.2), which is also a's default router: what a sends to
// the borrower's subnet without IPsec leaves a's link in clear.
type lan struct {
	a, b  *netnstest.NS
	sniff *netnstest.Sniffer
}

func newLAN(t *testing.T) *lan {
	l := &lan{a: netnstest.New(t, "xfa"), b: netnstest.New(t, "xfb")}
	netnstest.Veth(t, netnstest.End{NS: l.a, Name: "xv0", Addr: netip.MustParsePrefix("10.32.5.1/24")},
		netnstest.End{NS: l.b, Name: "xv1", Addr: netip.MustParsePrefix("10.32.5.2/24")})
	l.a.Do(t, func() {
		if err := netlink.RouteAdd(&netlink.Route{Gw: net.ParseIP("10.32.5.2")}); err != nil {
			t.Fatal(err)
		}
	})
	l.sniff = l.a.Sniff(t, "xv0")
	return l
}

// inClear sends one UDP datagram from a (from its default source, and
// from its LAN address) to each of tos, then a marker to b, and returns
// how many went out in clear to the remote selector 10.32.7.0/24.
func (l *lan) inClear(t *testing.T, tos ...string) int {
	t.Helper()
	marker := netip.MustParseAddr("10.32.5.2")
	l.a.Do(t, func() {
		for _, to := range tos {
			for _, from := range []string{"", "10.32.5.1"} {
				var laddr *net.UDPAddr
				if from != "" {
					laddr = &net.UDPAddr{IP: net.ParseIP(from)}
				}
				c, err := net.DialUDP("udp4", laddr, &net.UDPAddr{IP: net.ParseIP(to), Port: 2049})
				if err != nil {
					t.Logf("from %q to %s: %v", from, to, err)
					continue
				}
				if _, err := c.Write([]byte("nfs?")); err != nil {
					t.Logf("from %q to %s: %v (dropped, as it should be)", from, to, err)
				}
				c.Close()
			}
		}
		c, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: marker.AsSlice(), Port: 9})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte("marker")); err != nil {
			t.Fatal(err)
		}
	})
	return l.sniff.CountUntil(t, netip.MustParsePrefix("10.32.7.0/24"), marker)
}

// After the last SA goes (DPD gave up during a WAN outage, the gateway
// deleted it, a hard expiry), and after the plane is closed (the process
// exits or dies: kernel objects stay), nothing to the remote selector
// leaves in clear; only Teardown, the deliberate end of the lease, lets
// it. That last step is also the proof that the sniffer sees clear text.
func TestNoSANothingLeavesInClear(t *testing.T) {
	l := newLAN(t)
	var p *Plane
	sa := testSA()
	sa.VirtualIP = sa.TSLocal[0]
	l.a.Do(t, func() {
		var err error
		if p, err = New(context.Background(), Config{}); err != nil {
			t.Fatal(err)
		}
		p.states = &recordedStates{live: map[uint32]*netlink.XfrmState{}}
		if err := p.Install(context.Background(), sa); err != nil {
			t.Fatal(err)
		}
		if err := p.Remove(context.Background(), sa.InSPI, sa.OutSPI); err != nil {
			t.Fatal(err)
		}
	})
	if n := l.inClear(t, "10.32.7.5"); n != 0 {
		t.Fatalf("after the last SA was removed, %d packets to the remote selector left in clear", n)
	}
	p.Close()
	if n := l.inClear(t, "10.32.7.5"); n != 0 {
		t.Fatalf("after the data plane was closed, %d packets to the remote selector left in clear", n)
	}
	l.a.Do(t, func() {
		if err := p.Teardown(context.Background()); err != nil {
			t.Fatal(err)
		}
		if ps, _ := p.h.XfrmPolicyList(netlink.FAMILY_ALL); len(ps) != 0 {
			t.Errorf("%d policies left after Teardown", len(ps))
		}
	})
	if n := l.inClear(t, "10.32.7.5"); n == 0 {
		t.Fatal("after Teardown nothing went out in clear either: the sniffer cannot see clear text, this test proves nothing")
	}
}

// Guard protects what the configuration names before the first SA, and
// never the prefix that holds the gateway.
func TestGuardBeforeFirstSA(t *testing.T) {
	l := newLAN(t)
	l.a.Do(t, func() {
		p, err := New(context.Background(), Config{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Teardown(context.Background()) })
		err = p.Guard(context.Background(), []netip.Prefix{netip.MustParsePrefix("10.32.7.0/24"), netip.MustParsePrefix("10.32.0.0/16")},
			netip.MustParseAddr("10.32.5.2"))
		if err != nil {
			t.Fatal(err)
		}
		if pol := policyFor(t, p.h, netip.MustParsePrefix("10.32.0.0/16"), anyV4, netlink.XFRM_DIR_IN); pol != nil {
			t.Errorf("a guard for 10.32.0.0/16, which holds the gateway: %+v", pol)
		}
	})
	if n := l.inClear(t, "10.32.7.5"); n != 0 {
		t.Fatalf("guarded before the first SA, %d packets to the remote selector left in clear", n)
	}
}

var _ = dataplane.AlgAES256GCM16

// A re-connect may bring another virtual IP: the route to the remote
// selector takes it as its source, and the old one leaves the device
// (held for the lease, it would otherwise stay as a stray source).
func TestNewVirtualIPReplacesHeldOne(t *testing.T) {
	l := newLAN(t)
	l.a.Do(t, func() {
		p, err := New(context.Background(), Config{})
		if err != nil {
			t.Fatal(err)
		}
		p.states = &recordedStates{live: map[uint32]*netlink.XfrmState{}}
		t.Cleanup(func() { p.Teardown(context.Background()) })
		first, second := testSA(), rekeyOf(testSA(), 1)
		first.VirtualIP = first.TSLocal[0]
		second.VirtualIP = netip.MustParsePrefix("10.32.6.2/32")
		second.TSLocal = []netip.Prefix{second.VirtualIP}
		for _, step := range []func() error{
			func() error { return p.Install(context.Background(), first) },
			func() error { return p.Remove(context.Background(), first.InSPI, first.OutSPI) },
			func() error { return p.Install(context.Background(), second) },
		} {
			if err := step(); err != nil {
				t.Fatal(err)
			}
		}
		rs, err := netlink.RouteGet(net.ParseIP("10.32.7.5"))
		if err != nil || len(rs) == 0 {
			t.Fatalf("route to the remote selector: %v", err)
		}
		if !rs[0].Src.Equal(net.ParseIP("10.32.6.2")) {
			t.Errorf("route to the remote selector has source %v, want the new virtual IP 10.32.6.2", rs[0].Src)
		}
		l0, _ := netlink.LinkByName("xv0")
		addrs, _ := netlink.AddrList(l0, netlink.FAMILY_V4)
		for _, a := range addrs {
			if a.IP.Equal(net.ParseIP("10.32.6.1")) {
				t.Errorf("the old virtual IP 10.32.6.1 is still on the device")
			}
		}
	})
}

const holderEnv = "FERRY_XFRM_TEST_HOLDER"

// TestHolderProcess is not a test: TestKill9LeavesNothingInClear runs the
// test binary with holderEnv set, in namespace a, to hold a plane with one
// SA (its states only recorded, as on every host without ESP) until it is
// killed.
func TestHolderProcess(t *testing.T) {
	if os.Getenv(holderEnv) == "" {
		t.Skip("helper process for TestKill9LeavesNothingInClear")
	}
	p, err := New(context.Background(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	p.states = &recordedStates{live: map[uint32]*netlink.XfrmState{}}
	sa := testSA()
	sa.VirtualIP = sa.TSLocal[0]
	if err := p.Install(context.Background(), sa); err != nil {
		t.Fatal(err)
	}
	netnstest.Hold()
}

// The process holding the kernel plane is killed (kill -9: no Close, no
// Teardown) while its SA is up. Its policies, guards, virtual IP and
// routes are kernel objects and stay; nothing to the remote selector
// leaves in clear.
func TestKill9LeavesNothingInClear(t *testing.T) {
	l := newLAN(t)
	if out, err := l.a.Command("true").CombinedOutput(); err != nil {
		// busybox ip (the QEMU guest's) has no netns.
		t.Skipf("ip netns exec unavailable: %v %s", err, out)
	}
	l.a.Kill9(t, "TestHolderProcess", holderEnv)
	if n := l.inClear(t, "10.32.7.5"); n != 0 {
		t.Fatalf("after kill -9 of the plane's holder, %d packets to the remote selector left in clear", n)
	}
}
