package xfrm

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"ferry/ipsec/dataplane"
)

// kernelPair is newLAN with a kernel plane on each side (real ESP states:
// runs in the QEMU guest of internal/vmlab's TestIPsecGuest, skips on hosts without
// ESP): a is the lent server (virtual IP 10.32.6.1), b the gateway with
// 10.32.7.1 inside the remote selector, echoing UDP on port 7000.
type kernelPair struct {
	*lan
	pa, pb *Plane
	sa     dataplane.ChildSA // a's view of generation 0
}

func newKernelPair(t *testing.T) *kernelPair {
	k := &kernelPair{lan: newLAN(t)}
	k.sa = testSA()
	k.sa.Encap, k.sa.VirtualIP = false, k.sa.TSLocal[0]
	k.b.Do(t, func() {
		lo, _ := netlink.LinkByName("lo")
		if err := netlink.AddrAdd(lo, &netlink.Addr{IPNet: ipnet(netip.MustParsePrefix("10.32.7.1/32"))}); err != nil {
			t.Fatal(err)
		}
		// The way back to the lent server's virtual IP (a gateway routes
		// its pool towards the tunnel).
		l, _ := netlink.LinkByName("xv1")
		if err := netlink.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Dst: ipnet(k.sa.TSLocal[0]), Scope: netlink.SCOPE_LINK}); err != nil {
			t.Fatal(err)
		}
		p, err := New(context.Background(), Config{})
		if err != nil {
			t.Fatal(err)
		}
		k.pb = p
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP("10.32.7.1"), Port: 7000})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		go func() {
			buf := make([]byte, 1500)
			for {
				n, from, err := c.ReadFromUDP(buf)
				if err != nil {
					return
				}
				c.WriteToUDP(buf[:n], from)
			}
		}()
	})
	k.a.Do(t, func() {
		p, err := New(context.Background(), Config{})
		if err != nil {
			t.Fatal(err)
		}
		k.pa = p
	})
	t.Cleanup(func() { k.pa.Teardown(context.Background()); k.pb.Teardown(context.Background()) })
	return k
}

// install puts generation g on side a, b or both ("ab", "ba": in that order).
func (k *kernelPair) install(t *testing.T, g uint32, sides string, deferred bool) {
	t.Helper()
	for _, side := range sides {
		sa, p := rekeyOf(k.sa, g), k.pa
		if side == 'b' {
			sa, p = mirrorSA(sa), k.pb
		}
		sa.Deferred = deferred
		installOrSkip(t, p, sa)
	}
}

func (k *kernelPair) remove(t *testing.T, g uint32, sides string) {
	t.Helper()
	for _, side := range sides {
		sa, p := rekeyOf(k.sa, g), k.pa
		if side == 'b' {
			sa, p = mirrorSA(sa), k.pb
		}
		if err := p.Remove(context.Background(), sa.InSPI, sa.OutSPI); err != nil {
			t.Fatal(err)
		}
	}
}

// mirrorSA is b's view of a's SA.
func mirrorSA(sa dataplane.ChildSA) dataplane.ChildSA {
	sa.InSPI, sa.OutSPI = sa.OutSPI, sa.InSPI
	sa.Local, sa.Remote = sa.Remote, sa.Local
	sa.InKey, sa.OutKey = sa.OutKey, sa.InKey
	sa.TSLocal, sa.TSRemote = sa.TSRemote, sa.TSLocal
	sa.VirtualIP = netip.Prefix{}
	return sa
}

// echo sends one datagram from a's virtual IP to b's echo server and
// waits for the answer; nothing may cross the LAN in clear meanwhile.
func (k *kernelPair) echo(t *testing.T, when string) {
	t.Helper()
	var err error
	k.a.Do(t, func() {
		var c *net.UDPConn
		c, err = net.DialUDP("udp4", &net.UDPAddr{IP: net.ParseIP("10.32.6.1")}, &net.UDPAddr{IP: net.ParseIP("10.32.7.1"), Port: 7000})
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 64)
		for try := 0; try < 20; try++ { // ESP drops nothing here, but UDP may
			c.Write([]byte(when))
			c.SetReadDeadline(time.Now().Add(250 * time.Millisecond))
			var n int
			if n, err = c.Read(buf); err == nil && string(buf[:n]) == when {
				return
			}
		}
	})
	if err != nil {
		t.Fatalf("%s: no echo through the tunnel: %v", when, err)
	}
	if n := k.inClear(t); n != 0 {
		t.Fatalf("%s: %d packets to the remote selector crossed the LAN in clear", when, n)
	}
}

// counters of generation g on a.
func (k *kernelPair) counters(t *testing.T, g uint32) dataplane.SACounters {
	t.Helper()
	sa := rekeyOf(k.sa, g)
	c, err := k.pa.Counters(context.Background(), sa.InSPI, sa.OutSPI)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// kstep is one data-plane call an IKE daemon makes during a rekey (see
// esp's TestRekeyFromEitherSideKeepsTrafficFlowing): side 'a' or 'b'
// installs (the rekey's responder: deferred) or removes generation gen.
type kstep struct {
	side     rune
	install  bool
	gen      uint32
	deferred bool
}

func kinst(side rune, g uint32, deferred bool) kstep { return kstep{side, true, g, deferred} }
func krm(side rune, g uint32) kstep                  { return kstep{side, false, g, false} }

// Make-before-break with the kernel's own states, in the order of the IKE
// exchanges: the traffic passes after every step, whichever side starts
// the rekey and when both do at once, ends on the SA that remains, and
// never crosses the LAN in clear; after the last SA the policy blocks.
func TestRekeyWithKernelStates(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps []kstep
		left  uint32
	}{
		{"initiator (a) rekeys", []kstep{kinst('b', 1, true), kinst('a', 1, false), krm('b', 0), krm('a', 0)}, 1},
		{"gateway (b) rekeys", []kstep{kinst('a', 1, true), kinst('b', 1, false), krm('a', 0), krm('b', 0)}, 1},
		{"simultaneous", []kstep{kinst('b', 1, true), kinst('a', 2, true), kinst('a', 1, false), kinst('b', 2, false),
			krm('b', 1), krm('a', 1), krm('b', 0), krm('a', 0)}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := newKernelPair(t)
			k.install(t, 0, "ab", false)
			k.echo(t, "first SA")
			for i, st := range tc.steps {
				if st.install {
					k.install(t, st.gen, string(st.side), st.deferred)
				} else {
					k.remove(t, st.gen, string(st.side))
				}
				k.echo(t, fmt.Sprintf("step %d %+v", i, st))
			}
			before := k.counters(t, tc.left)
			k.echo(t, "after the rekey")
			if after := k.counters(t, tc.left); after.OutPackets <= before.OutPackets || after.InPackets <= before.InPackets {
				t.Fatalf("the remaining SA carried nothing: counters %+v then %+v", before, after)
			}
			k.remove(t, tc.left, "ab")
			k.a.Do(t, func() {
				pol := policyFor(t, k.pa.h, k.sa.TSLocal[0], k.sa.TSRemote[0], netlink.XFRM_DIR_OUT)
				if pol == nil || pol.Action != netlink.XFRM_POLICY_BLOCK {
					t.Fatalf("after the last SA: out policy %+v, want a block policy", pol)
				}
			})
			if n := k.inClear(t, "10.32.7.1"); n != 0 {
				t.Fatalf("after the last SA, %d packets crossed the LAN in clear", n)
			}
		})
	}
}
