package ike

import "sync/atomic"

// Counts are what the daemon did since it started, for metrics: rekeys
// done and failed, and refusals (a peer's authentication or allow-list
// check, a CHILD_SA or CREATE_CHILD_SA request, a message of another IKE
// version).
type Counts struct {
	IKERekeys, ChildRekeys, RekeyFailures        uint64
	RefusedPeers, RefusedChildren, RefusedOthers uint64
}

type counts struct {
	ikeRekeys, childRekeys, rekeyFailures        atomic.Uint64
	refusedPeers, refusedChildren, refusedOthers atomic.Uint64
}

// Counts reads the daemon's counters.
func (d *Daemon) Counts() Counts {
	c := &d.counts
	return Counts{IKERekeys: c.ikeRekeys.Load(), ChildRekeys: c.childRekeys.Load(), RekeyFailures: c.rekeyFailures.Load(),
		RefusedPeers: c.refusedPeers.Load(), RefusedChildren: c.refusedChildren.Load(), RefusedOthers: c.refusedOthers.Load()}
}
