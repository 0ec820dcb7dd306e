package xfrm

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"ferry/ipsec/dataplane"
)

// Policy priorities (lower wins). The kernel treats two policies with the
// same selector and direction as one, whatever their priority
// (xfrm_policy_insert), so an SA's policy and its block are one kernel
// object that changes action; the guards have selectors of their own and
// lose to any SA policy.
const (
	// PrioritySA is the priority of the IPsec policies of the CHILD_SAs'
	// selectors, and of the block policies left in their place.
	PrioritySA = 0x1000
	// PriorityGuard is the priority of the guards: block policies from
	// any address to a remote selector (out) and from it to any address
	// (in, fwd), under every SA policy.
	PriorityGuard = 0x2000
)

var anyV4 = netip.MustParsePrefix("0.0.0.0/0")

// polKey is what identifies a policy to the kernel (type main, no mark).
type polKey struct {
	src, dst netip.Prefix
	dir      netlink.Dir
}

func (k polKey) String() string { return fmt.Sprintf("%v -> %v dir %v", k.src, k.dst, k.dir) }

// polEntry is one kernel policy and the SAs that use it, oldest first.
// With users it is an IPsec policy with the newest user's template; with
// none it is a block policy. It never goes back to nothing before
// Teardown: the moment between two SAs (a WAN outage, a re-connect, the
// end of a rekey that went wrong) is when packets would leave in clear.
type polEntry struct {
	key   polKey
	prio  int
	users []*installed
}

// policyKeys are the selectors of sa's IPsec policies.
func policyKeys(sa dataplane.ChildSA) []polKey {
	var ks []polKey
	for _, l := range sa.TSLocal {
		for _, r := range sa.TSRemote {
			l, r := l.Masked(), r.Masked()
			ks = append(ks, polKey{l, r, netlink.XFRM_DIR_OUT}, polKey{r, l, netlink.XFRM_DIR_IN}, polKey{r, l, netlink.XFRM_DIR_FWD})
		}
	}
	return ks
}

// guardKeys are the guards for remote prefix r.
func guardKeys(r netip.Prefix) []polKey {
	r = r.Masked()
	return []polKey{{anyV4, r, netlink.XFRM_DIR_OUT}, {r, anyV4, netlink.XFRM_DIR_IN}, {r, anyV4, netlink.XFRM_DIR_FWD}}
}

// selectorsKey names a CHILD_SA's selector set. SAs with the same one (a
// rekey, a re-connect) share one reqid, as strongSwan's do: the policy's
// template then matches the old and the new SA's states alike, and the
// kernel sends on the newest (xfrm_state_find prefers the latest added).
func selectorsKey(sa dataplane.ChildSA) string {
	var b strings.Builder
	for _, side := range [][]netip.Prefix{sa.TSLocal, sa.TSRemote} {
		ps := make([]string, len(side))
		for i, p := range side {
			ps[i] = p.Masked().String()
		}
		sort.Strings(ps)
		b.WriteString(strings.Join(ps, ","))
		b.WriteString("|")
	}
	return b.String()
}

// reqidFor returns the reqid of sa's selector set, choosing one the first
// time. Called with mu held.
func (p *Plane) reqidFor(sa dataplane.ChildSA) int {
	if sa.ReqID != 0 {
		return int(sa.ReqID)
	}
	k := selectorsKey(sa)
	if id, ok := p.reqids[k]; ok {
		return id
	}
	p.reqid++
	p.reqids[k] = p.reqid
	return p.reqid
}

// policy is the kernel object e stands for now.
func (e *polEntry) policy() *netlink.XfrmPolicy {
	pol := &netlink.XfrmPolicy{Src: ipnet(e.key.src), Dst: ipnet(e.key.dst), Dir: e.key.dir, Priority: e.prio}
	if len(e.users) == 0 {
		pol.Action = netlink.XFRM_POLICY_BLOCK
		return pol
	}
	u := e.users[len(e.users)-1]
	src, dst := u.sa.Remote, u.sa.Local
	if e.key.dir == netlink.XFRM_DIR_OUT {
		src, dst = dst, src
	}
	pol.Tmpls = []netlink.XfrmPolicyTmpl{{Src: ip(src.Addr()), Dst: ip(dst.Addr()),
		Proto: netlink.XFRM_PROTO_ESP, Mode: netlink.XFRM_MODE_TUNNEL, Reqid: u.reqid}}
	return pol
}

// sync writes e to the kernel (XFRM_MSG_UPDPOLICY: add or replace).
func (p *Plane) sync(e *polEntry) error {
	if err := p.h.XfrmPolicyUpdate(e.policy()); err != nil {
		what := "block"
		if len(e.users) > 0 {
			what = "IPsec"
		}
		return fmt.Errorf("xfrm: %s policy %v: %w", what, e.key, err)
	}
	return nil
}

// entry returns the entry of k, making one with priority prio.
func (p *Plane) entry(k polKey, prio int) *polEntry {
	e := p.pols[k]
	if e == nil {
		e = &polEntry{key: k, prio: prio}
		p.pols[k] = e
	}
	return e
}

// guard installs the block policies for remote prefixes rs, except one
// that holds peer (the gateway's outer address: blocking it would block
// the LAN path the tunnel itself and the host's other traffic take; the
// same rule as for routes, vip_linux.go). Called with mu held.
func (p *Plane) guard(rs []netip.Prefix, peer netip.Addr) error {
	for _, r := range rs {
		if !r.IsValid() || !r.Addr().Is4() {
			return fmt.Errorf("xfrm: guard %v: want an IPv4 prefix", r)
		}
		if peer.IsValid() && r.Contains(peer) {
			p.log.Warn("xfrm: no guard for a selector that holds the gateway", "selector", r, "gateway", peer)
			continue
		}
		for _, k := range guardKeys(r) {
			if _, ok := p.pols[k]; ok {
				continue
			}
			if err := p.sync(p.entry(k, PriorityGuard)); err != nil {
				return err
			}
		}
	}
	return nil
}

// attach makes inst a user of its policies, newest last; on error it
// leaves every entry as it was. Called with mu held.
func (p *Plane) attach(inst *installed) error {
	for i, k := range inst.keys {
		e := p.entry(k, PrioritySA)
		e.users = append(e.users, inst)
		if err := p.sync(e); err != nil {
			p.detach(inst.keys[:i+1], inst)
			return err
		}
	}
	return nil
}

// detach drops inst from the entries of keys: each goes back to its
// newest remaining user's template, or to block. Called with mu held.
func (p *Plane) detach(keys []polKey, inst *installed) error {
	var errs []error
	for _, k := range keys {
		e := p.pols[k]
		if e == nil {
			continue
		}
		i := slices.Index(e.users, inst)
		if i < 0 {
			continue
		}
		newest := i == len(e.users)-1
		e.users = slices.Delete(e.users, i, i+1)
		if newest || len(e.users) == 0 {
			errs = append(errs, p.sync(e))
		}
	}
	return errors.Join(errs...)
}

// dropPolicies deletes every policy this plane ever installed: the end
// of the lease. Called with mu held.
func (p *Plane) dropPolicies() error {
	var errs []error
	for k, e := range p.pols {
		if err := p.h.XfrmPolicyDel(e.policy()); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("xfrm: deleting policy %v: %w", k, err))
		}
		delete(p.pols, k)
	}
	return errors.Join(errs...)
}
