package ike

import (
	"fmt"
	"slices"
	"time"
)

// maxRetired bounds the replaced CHILD_SAs one IKE SA keeps during their
// grace: the old one of a rekey and the redundant one of a simultaneous
// rekey, with room for one more rekey within the grace. A peer that
// rekeys in a loop and never deletes cannot pile up SAs beyond it.
const maxRetired = 4

// retire marks c as replaced by a rekey. It stays installed, so packets
// the peer sent on it before switching still decrypt (make before
// break), until the peer deletes it or RekeyGrace has passed (reap).
func (d *Daemon) retire(sa *ikeSA, c *child) {
	if c.replaced {
		return
	}
	c.replaced, c.retiredAt = true, time.Now()
	var retired []*child
	for _, o := range sa.children {
		if o.replaced {
			retired = append(retired, o)
		}
	}
	for len(retired) > maxRetired {
		oldest := slices.MinFunc(retired, func(a, b *child) int { return a.retiredAt.Compare(b.retiredAt) })
		d.log.Info("ike: replaced CHILD_SA removed", "peer", peerName(sa), "spi", fmt.Sprintf("%08x", oldest.cfg.InSPI),
			"reason", fmt.Sprintf("more than %d replaced CHILD_SAs", maxRetired))
		d.dropChild(sa, oldest)
		retired = slices.DeleteFunc(retired, func(o *child) bool { return o == oldest })
	}
}

// reap removes the replaced CHILD_SAs of sa whose grace is over: the peer
// should have deleted them (RFC 7296 section 2.8) and did not.
func (d *Daemon) reap(sa *ikeSA, now time.Time) {
	for _, c := range slices.Clone(sa.children) {
		if c.replaced && now.Sub(c.retiredAt) > d.cfg.RekeyGrace {
			d.log.Info("ike: replaced CHILD_SA removed", "peer", peerName(sa), "spi", fmt.Sprintf("%08x", c.cfg.InSPI),
				"reason", fmt.Sprintf("not deleted within %v of its rekey", d.cfg.RekeyGrace))
			d.dropChild(sa, c)
		}
	}
}

// retireIKE marks an IKE SA replaced by a rekey: it only waits for its
// DELETE (whoever sends it), at most RekeyGrace (tickSA), and a peer key
// keeps at most maxRetired of them, so that a peer rekeying its IKE SA in
// a loop without deleting cannot pile them up.
func (d *Daemon) retireIKE(sa *ikeSA) {
	sa.moved, sa.st, sa.movedAt = true, stDeleting, time.Now()
	if sa.peer == nil {
		return
	}
	var retired []*ikeSA
	for _, o := range d.sas {
		if o.moved && o.st == stDeleting && o.peer != nil && o.peer.Pin == sa.peer.Pin {
			retired = append(retired, o)
		}
	}
	for len(retired) > maxRetired {
		oldest := slices.MinFunc(retired, func(a, b *ikeSA) int { return a.movedAt.Compare(b.movedAt) })
		d.removeSA(oldest, fmt.Sprintf("more than %d rekeyed IKE SAs of the key", maxRetired))
		retired = slices.DeleteFunc(retired, func(o *ikeSA) bool { return o == oldest })
	}
}
