package xfrm

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"ferry/ipsec/dataplane"
)

// recordedStates stands in for the kernel's states on hosts without ESP
// (this one: no rfc4106, no esp4). Everything else (policies, addresses,
// routes) is the real kernel's, in a fresh namespace. In the QEMU guest
// the same scenarios run with real states (TestRekeyWithKernelStates).
type recordedStates struct {
	mu   sync.Mutex
	live map[uint32]*netlink.XfrmState
	log  []string // "add SPI" and "del SPI", in order
}

func (r *recordedStates) XfrmStateAdd(s *netlink.XfrmState) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.live[uint32(s.Spi)]; dup {
		return unix.EEXIST
	}
	r.live[uint32(s.Spi)] = s
	r.log = append(r.log, fmt.Sprintf("add %#x", uint32(s.Spi)))
	return nil
}

func (r *recordedStates) XfrmStateDel(s *netlink.XfrmState) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.live[uint32(s.Spi)]; !ok {
		return unix.ESRCH
	}
	delete(r.live, uint32(s.Spi))
	r.log = append(r.log, fmt.Sprintf("del %#x", uint32(s.Spi)))
	return nil
}

func (r *recordedStates) get(spi uint32) *netlink.XfrmState {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.live[spi]
}

// policyPlane is a Plane in the current (test) namespace whose states are
// only recorded.
func policyPlane(t *testing.T) (*Plane, *recordedStates) {
	t.Helper()
	p, err := New(context.Background(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	rs := &recordedStates{live: map[uint32]*netlink.XfrmState{}}
	p.states = rs
	t.Cleanup(func() { p.Close() })
	return p, rs
}

// rekeyOf is sa after a CHILD_SA rekey: new SPIs and keys, the same
// selectors and outer addresses.
func rekeyOf(sa dataplane.ChildSA, n uint32) dataplane.ChildSA {
	sa.InSPI, sa.OutSPI = sa.InSPI+n*0x100, sa.OutSPI+n*0x100
	return sa
}

// policyFor returns the kernel's policy with exactly this selector and
// direction, or nil.
func policyFor(t *testing.T, h *netlink.Handle, src, dst netip.Prefix, dir netlink.Dir) *netlink.XfrmPolicy {
	t.Helper()
	ps, err := h.XfrmPolicyList(netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range ps {
		if p.Dir == dir && p.Src.String() == src.String() && p.Dst.String() == dst.String() {
			return &ps[i]
		}
	}
	return nil
}

// requireCarriedBy fails unless the policies of sa's selectors are IPsec
// policies whose template the SA with outbound SPI spi satisfies: the
// kernel's outbound state lookup matches the template's addresses and
// reqid (net/xfrm/xfrm_state.c, xfrm_state_find), so a template with any
// other reqid leaves the packet without a state.
func requireCarriedBy(t *testing.T, p *Plane, rs *recordedStates, sa dataplane.ChildSA, inSPI, outSPI uint32, when string) {
	t.Helper()
	out, in := rs.get(outSPI), rs.get(inSPI)
	if out == nil || in == nil {
		t.Fatalf("%s: states %#x/%#x not installed", when, inSPI, outSPI)
	}
	for _, c := range []struct {
		src, dst netip.Prefix
		dir      netlink.Dir
		state    *netlink.XfrmState
	}{
		{sa.TSLocal[0], sa.TSRemote[0], netlink.XFRM_DIR_OUT, out},
		{sa.TSRemote[0], sa.TSLocal[0], netlink.XFRM_DIR_IN, in},
		{sa.TSRemote[0], sa.TSLocal[0], netlink.XFRM_DIR_FWD, in},
	} {
		pol := policyFor(t, p.h, c.src, c.dst, c.dir)
		switch {
		case pol == nil:
			t.Fatalf("%s: no %v policy %v -> %v: traffic of SA %#x has no policy (it leaves in clear)", when, c.dir, c.src, c.dst, outSPI)
		case pol.Action != netlink.XFRM_POLICY_ALLOW || len(pol.Tmpls) != 1:
			t.Fatalf("%s: %v policy %v -> %v action %v templates %d, want one IPsec template", when, c.dir, c.src, c.dst, pol.Action, len(pol.Tmpls))
		}
		tm := pol.Tmpls[0]
		if tm.Reqid != c.state.Reqid || !tm.Src.Equal(c.state.Src) || !tm.Dst.Equal(c.state.Dst) {
			t.Fatalf("%s: %v policy %v -> %v template reqid %d %v -> %v; SA %#x is reqid %d %v -> %v: the kernel would find no state",
				when, c.dir, c.src, c.dst, tm.Reqid, tm.Src, tm.Dst, uint32(c.state.Spi), c.state.Reqid, c.state.Src, c.state.Dst)
		}
	}
}

// The first CHILD_SA rekey used to kill the tunnel: the new SA's policy
// replaced the old one's (same selector), and deleting the old SA then
// deleted that one shared policy. Make-before-break, in every order the
// IKE daemon can produce: either side initiating (old removed after the
// new is in), and a simultaneous rekey (two new SAs, the redundant one
// removed first or last).
func TestCHILDRekeyKeepsPolicyForNewSA(t *testing.T) {
	for _, tc := range []struct {
		name    string
		install []uint32 // rekey generations installed, in order (0 is the first SA)
		remove  []uint32 // then removed, in order
		left    uint32   // the generation that must carry the traffic
	}{
		{"rekey, old removed", []uint32{0, 1}, []uint32{0}, 1},
		{"two rekeys in a row", []uint32{0, 1, 2}, []uint32{0, 1}, 2},
		{"simultaneous, loser removed first", []uint32{0, 1, 2}, []uint32{1, 0}, 2},
		{"simultaneous, old removed first", []uint32{0, 2, 1}, []uint32{0, 2}, 1},
		{"rekey abandoned, new removed", []uint32{0, 1}, []uint32{1}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inNewNS(t, func() {
				p, rs := policyPlane(t)
				ctx := context.Background()
				sa := testSA()
				for _, g := range tc.install {
					if err := p.Install(ctx, rekeyOf(sa, g)); err != nil {
						t.Fatal(err)
					}
				}
				for _, g := range tc.remove {
					r := rekeyOf(sa, g)
					if err := p.Remove(ctx, r.InSPI, r.OutSPI); err != nil {
						t.Fatal(err)
					}
				}
				l := rekeyOf(sa, tc.left)
				requireCarriedBy(t, p, rs, sa, l.InSPI, l.OutSPI, "after "+tc.name)
			})
		})
	}
}

// The responder of a rekey (ChildSA.Deferred) must not send on the new
// SA before the initiator has it: the kernel would pick the newest
// outbound state at once, so the plane adds it only when the old SA goes,
// and before the old one's states are deleted.
func TestDeferredOutboundStateWaitsForOldSA(t *testing.T) {
	inNewNS(t, func() {
		p, rs := policyPlane(t)
		ctx := context.Background()
		old, nw := testSA(), rekeyOf(testSA(), 1)
		nw.Deferred = true
		if err := p.Install(ctx, old); err != nil {
			t.Fatal(err)
		}
		if err := p.Install(ctx, nw); err != nil {
			t.Fatal(err)
		}
		if rs.get(nw.InSPI) == nil || rs.get(nw.OutSPI) != nil {
			t.Fatalf("deferred SA installed: inbound %v, outbound %v; want inbound only", rs.get(nw.InSPI) != nil, rs.get(nw.OutSPI) != nil)
		}
		if err := p.Remove(ctx, old.InSPI, old.OutSPI); err != nil {
			t.Fatal(err)
		}
		requireCarriedBy(t, p, rs, old, nw.InSPI, nw.OutSPI, "after the old SA went")
		added := slices.Index(rs.log, fmt.Sprintf("add %#x", nw.OutSPI))
		deleted := slices.Index(rs.log, fmt.Sprintf("del %#x", old.OutSPI))
		if added < 0 || deleted < 0 || added > deleted {
			t.Fatalf("state operations %v: the new outbound state must be added before the old one is deleted", rs.log)
		}
		// A first SA has nothing to wait for, deferred or not.
		first := rekeyOf(testSA(), 5)
		first.Deferred = true
		first.TSRemote = []netip.Prefix{netip.MustParsePrefix("10.32.9.0/24")}
		if err := p.Install(ctx, first); err != nil {
			t.Fatal(err)
		}
		if rs.get(first.OutSPI) == nil {
			t.Fatal("a deferred SA with no older SA of its selectors got no outbound state")
		}
	})
}

// After a rekey the old SA stops sending at once, and its inbound state
// takes what the peer sealed before it switched for a while (drainTime),
// then goes; the last SA of a selector set goes at once.
func TestOldInboundStateDrainsAfterRekey(t *testing.T) {
	inNewNS(t, func() {
		p, rs := policyPlane(t)
		p.drainTime = 50 * time.Millisecond
		ctx := context.Background()
		old, nw := testSA(), rekeyOf(testSA(), 1)
		for _, sa := range []dataplane.ChildSA{old, nw} {
			if err := p.Install(ctx, sa); err != nil {
				t.Fatal(err)
			}
		}
		if err := p.Remove(ctx, old.InSPI, old.OutSPI); err != nil {
			t.Fatal(err)
		}
		if rs.get(old.OutSPI) != nil || rs.get(old.InSPI) == nil {
			t.Fatalf("right after the old SA's removal: outbound state present=%v, inbound present=%v; want only the inbound (draining)",
				rs.get(old.OutSPI) != nil, rs.get(old.InSPI) != nil)
		}
		for rs.get(old.InSPI) != nil {
			time.Sleep(10 * time.Millisecond) // the test's own timeout bounds this
		}
		if err := p.Remove(ctx, nw.InSPI, nw.OutSPI); err != nil {
			t.Fatal(err)
		}
		if rs.get(nw.InSPI) != nil || rs.get(nw.OutSPI) != nil {
			t.Fatal("the last SA of its selectors left a state behind")
		}
	})
}
