package esp

import (
	"context"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"ferry/internal/netnstest"
	"ferry/ipsec/dataplane"
)

var remoteTS = netip.MustParsePrefix("10.32.2.0/24")

// leaky makes b (10.32.0.2) a's default router, as the lender's LAN
// router is the lent server's: what a sends to the remote selector
// without ESP then leaves a's link in clear. It returns a sniffer on it.
func leaky(t *testing.T, a, b *end) *netnstest.Sniffer {
	a.ns.Do(t, func() {
		if err := netlink.RouteAdd(&netlink.Route{Gw: b.outer.AsSlice()}); err != nil {
			t.Fatal(err)
		}
	})
	return a.ns.Sniff(t, "espv0")
}

// inClear sends NFS-like datagrams from a to the remote selector (from
// the default source and from a's LAN address), then a marker to b, and
// returns how many crossed the link in clear.
func inClear(t *testing.T, a, b *end, s *netnstest.Sniffer) int {
	t.Helper()
	a.ns.Do(t, func() {
		for _, from := range []net.IP{nil, a.outer.AsSlice()} {
			c, err := net.DialUDP("udp4", &net.UDPAddr{IP: from}, &net.UDPAddr{IP: net.ParseIP("10.32.2.7"), Port: 2049})
			if err != nil {
				t.Logf("from %v: %v", from, err)
				continue
			}
			if _, err := c.Write([]byte("nfs?")); err != nil {
				t.Logf("from %v: %v (dropped, as it should be)", from, err)
			}
			c.Close()
		}
		c, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: b.outer.AsSlice(), Port: 9})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte("marker")); err != nil {
			t.Fatal(err)
		}
	})
	return s.CountUntil(t, remoteTS, b.outer)
}

// With no SA (the last one removed: DPD gave up, a hard expiry, the
// gateway deleted it), and after the plane and its TUN device are closed,
// nothing to the remote selector leaves in clear; after Teardown it does,
// which shows the sniffer sees clear text.
func TestNoSANothingLeavesInClear(t *testing.T) {
	a, b := topology(t, 1500)
	s := leaky(t, a, b)
	if err := a.plane.Remove(context.Background(), 0xc1000001, 0xc2000001); err != nil {
		t.Fatal(err)
	}
	if n := inClear(t, a, b, s); n != 0 {
		t.Fatalf("after the last SA was removed, %d packets to %v left in clear", n, remoteTS)
	}
	if st := a.plane.Stats(); st.TxNoSA == 0 {
		t.Errorf("the plane dropped nothing for want of an SA (stats %+v): where did the packets go?", st)
	}
	a.plane.Close()
	a.tun.Close() // what the kernel does when the holder exits or dies
	if n := inClear(t, a, b, s); n != 0 {
		t.Fatalf("with the TUN device gone, %d packets to %v left in clear", n, remoteTS)
	}
	a.ns.Do(t, func() {
		if err := a.plane.Teardown(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
	if n := inClear(t, a, b, s); n == 0 {
		t.Fatal("after Teardown nothing went out in clear either: the sniffer cannot see clear text, this test proves nothing")
	}
}

const holderEnv = "FERRY_ESP_TEST_HOLDER"

// TestHolderProcess is not a test: TestKill9LeavesNothingInClear runs the
// test binary with holderEnv set, in namespace a, to hold a plane with one
// SA until it is killed.
func TestHolderProcess(t *testing.T) {
	if os.Getenv(holderEnv) == "" {
		t.Skip("helper process for TestKill9LeavesNothingInClear")
	}
	tun, err := OpenTUN("esp9", 1400)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewNetlinkRouter(tun)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP("10.32.0.1"), Port: 4500})
	if err != nil {
		t.Fatal(err)
	}
	p := New(Config{TUN: tun, Conn: c, Router: r, MTU: 1400})
	sa := testSA()
	sa.Local, sa.Remote = netip.MustParseAddrPort("10.32.0.1:4500"), netip.MustParseAddrPort("10.32.0.2:4500")
	sa.TSLocal, sa.TSRemote, sa.VirtualIP = []netip.Prefix{netip.MustParsePrefix("10.32.1.1/32")}, []netip.Prefix{remoteTS}, netip.MustParsePrefix("10.32.1.1/32")
	if err := p.Install(context.Background(), sa); err != nil {
		t.Fatal(err)
	}
	netnstest.Hold()
}

// A process holding the user-space plane is killed (kill -9: no Close, no
// Teardown; its TUN device and the device's routes go with it). Its guards
// stay, and nothing to the remote selector leaves in clear.
func TestKill9LeavesNothingInClear(t *testing.T) {
	a, b := &end{ns: netnstest.New(t, "espk"), outer: netip.MustParseAddr("10.32.0.1")}, &end{ns: netnstest.New(t, "espk"), outer: netip.MustParseAddr("10.32.0.2")}
	netnstest.Veth(t, netnstest.End{NS: a.ns, Name: "espv0", Addr: netip.PrefixFrom(a.outer, 24)},
		netnstest.End{NS: b.ns, Name: "espv1", Addr: netip.PrefixFrom(b.outer, 24)})
	s := leaky(t, a, b)
	a.ns.Kill9(t, "TestHolderProcess", holderEnv)
	a.ns.Do(t, func() {
		if _, err := netlink.LinkByName("esp9"); err == nil {
			t.Fatal("the killed holder's TUN device is still there")
		}
	})
	if n := inClear(t, a, b, s); n != 0 {
		t.Fatalf("after kill -9 of the plane's holder, %d packets to %v left in clear", n, remoteTS)
	}
}

var _ = dataplane.AlgAES256GCM16

// Guard, as the gateway calls it for its pool and the keeper for the
// configured subnets: before any SA, and never for a prefix that holds
// the peer; its prohibit route outlives the TUN device.
func TestGuardBeforeFirstSA(t *testing.T) {
	a, b := &end{ns: netnstest.New(t, "espg"), outer: netip.MustParseAddr("10.32.0.1")}, &end{ns: netnstest.New(t, "espg"), outer: netip.MustParseAddr("10.32.0.2")}
	netnstest.Veth(t, netnstest.End{NS: a.ns, Name: "espv0", Addr: netip.PrefixFrom(a.outer, 24)},
		netnstest.End{NS: b.ns, Name: "espv1", Addr: netip.PrefixFrom(b.outer, 24)})
	s := leaky(t, a, b)
	var routes []netlink.Route
	a.ns.Do(t, func() {
		tun, err := OpenTUN("esp0", 1400)
		if err != nil {
			t.Fatal(err)
		}
		r, err := NewNetlinkRouter(tun)
		if err != nil {
			t.Fatal(err)
		}
		defer r.H.Close()
		p := New(Config{TUN: tun, Conn: &memConn{}, Router: r})
		if err := p.Guard(context.Background(), []netip.Prefix{remoteTS, netip.MustParsePrefix("10.32.0.0/16")}, b.outer); err != nil {
			t.Fatal(err)
		}
		p.Close()
		tun.Close()
		if routes, err = netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE); err != nil {
			t.Fatal(err)
		}
	})
	var guarded []string
	for _, r := range routes {
		if r.Type == unix.RTN_PROHIBIT {
			guarded = append(guarded, r.Dst.String())
		}
	}
	if strings.Join(guarded, " ") != remoteTS.String() {
		t.Fatalf("prohibit routes %v, want only %v (10.32.0.0/16 holds the peer)", guarded, remoteTS)
	}
	if n := inClear(t, a, b, s); n != 0 {
		t.Fatalf("guarded, %d packets to %v left in clear", n, remoteTS)
	}
}
