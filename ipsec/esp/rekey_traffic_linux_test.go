package esp

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"ferry/ipsec/dataplane"
)

// gen is generation g of topology's CHILD_SA as side a sees it (0 is the
// one topology installed).
func gen(a *end, b *end, g uint32) dataplane.ChildSA {
	sa := dataplane.ChildSA{
		InSPI: 0xc1000001 + g*0x100, OutSPI: 0xc2000001 + g*0x100,
		Local: netipAddrPort(a.outer), Remote: netipAddrPort(b.outer),
		Encap: true, Alg: dataplane.AlgAES256GCM16, InKey: key(byte(3 + 2*g)), OutKey: key(byte(4 + 2*g)),
		TSLocal: []netipPrefix{mustPrefix("10.32.1.1/32")}, TSRemote: []netipPrefix{remoteTS},
		VirtualIP: mustPrefix("10.32.1.1/32"),
	}
	return sa
}

// echoThrough sends one datagram from a's virtual IP to an echo server on
// b's inner address and waits for it back.
func echoThrough(t *testing.T, a *end, msg string) {
	t.Helper()
	var err error
	a.ns.Do(t, func() {
		var c *net.UDPConn
		if c, err = net.DialUDP("udp4", &net.UDPAddr{IP: net.ParseIP("10.32.1.1")}, &net.UDPAddr{IP: net.ParseIP("10.32.2.1"), Port: 7000}); err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 64)
		for try := 0; try < 20; try++ {
			c.Write([]byte(msg))
			c.SetReadDeadline(time.Now().Add(250 * time.Millisecond))
			var n int
			if n, err = c.Read(buf); err == nil && string(buf[:n]) == msg {
				return
			}
			t.Logf("%s: try %d: %v", msg, try, err)
		}
	})
	if err != nil {
		t.Fatalf("%s: no echo through the tunnel: %v", msg, err)
	}
}

// step is one data-plane call an IKE daemon makes during a rekey: side
// 'a' or 'b' installs (responder: deferred) or removes generation gen.
type step struct {
	side     rune
	install  bool
	gen      uint32
	deferred bool
}

func inst(side rune, g uint32, deferred bool) step { return step{side, true, g, deferred} }
func rm(side rune, g uint32) step                  { return step{side, false, g, false} }

// Either side may start a CHILD_SA rekey, and both may at once (RFC 7296
// 2.8.1: two new SAs, the redundant one deleted by its initiator). The
// steps are the IKE exchanges' order: the rekey's responder installs
// (deferred) before answering, the initiator installs when the answer
// comes, then deletes the old SA; the responder removes it on the
// DELETE, the initiator on its answer. Traffic must pass after every
// step, and end on the SA that remains.
func TestRekeyFromEitherSideKeepsTrafficFlowing(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps []step
		left  uint32
	}{
		{"initiator (a) rekeys", []step{inst('b', 1, true), inst('a', 1, false), rm('b', 0), rm('a', 0)}, 1},
		{"gateway (b) rekeys", []step{inst('a', 1, true), inst('b', 1, false), rm('a', 0), rm('b', 0)}, 1},
		// a asks for 1, b for 2, at once; 1 is the redundant one, which
		// a deletes. Each side sends on the SA it initiated (the peer has
		// it); what a sent on 1 before b's removal of 1 (on a's DELETE)
		// and a's (on the answer) is taken by 1's draining inbound half.
		{"simultaneous", []step{inst('b', 1, true), inst('a', 2, true), inst('a', 1, false), inst('b', 2, false),
			rm('b', 1), rm('a', 1), rm('b', 0), rm('a', 0)}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := topology(t, 1500)
			b.ns.Do(t, func() {
				c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP("10.32.2.1"), Port: 7000})
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
			ctx := context.Background()
			side := func(s rune, g uint32) (*Plane, dataplane.ChildSA) {
				sa := gen(a, b, g)
				if s == 'b' {
					m := mirror(sa)
					m.VirtualIP = mustPrefix("10.32.2.1/32")
					return b.plane, m
				}
				return a.plane, sa
			}
			echoThrough(t, a, "first SA")
			for i, st := range tc.steps {
				p, sa := side(st.side, st.gen)
				var err error
				if st.install {
					sa.Deferred = st.deferred
					err = p.Install(ctx, sa)
				} else {
					err = p.Remove(ctx, sa.InSPI, sa.OutSPI)
				}
				if err != nil {
					t.Fatal(err)
				}
				echoThrough(t, a, fmt.Sprintf("step %d %+v", i, st))
			}
			p, sa := side('a', tc.left)
			before, err := p.Counters(ctx, sa.InSPI, sa.OutSPI)
			if err != nil {
				t.Fatal(err)
			}
			echoThrough(t, a, "after the rekey")
			after, _ := p.Counters(ctx, sa.InSPI, sa.OutSPI)
			if after.OutPackets <= before.OutPackets || after.InPackets <= before.InPackets {
				t.Fatalf("the remaining SA %#x carried nothing: %+v then %+v", sa.OutSPI, before, after)
			}
			if st := a.plane.Stats(); st.DropNoSA != 0 || b.plane.Stats().DropNoSA != 0 {
				t.Fatalf("packets for SAs the receiver did not have yet: a dropped %d, b %d", st.DropNoSA, b.plane.Stats().DropNoSA)
			}
		})
	}
}

type netipPrefix = netip.Prefix

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func netipAddrPort(a netip.Addr) netip.AddrPort { return netip.AddrPortFrom(a, 4500) }
