package ike

import (
	"context"
	"fmt"
	"slices"
	"time"

	"ferry/ipsec/dataplane"
	"ferry/ipsec/ikev2"
)

// CHILD_SA bookkeeping shared by IKE_AUTH, CREATE_CHILD_SA and
// INFORMATIONAL: a new CHILD_SA's keys and its description for the data
// plane, its lifetime, installing, finding and removing it, and the data
// plane's expiry events, which start a rekey or a DELETE.

// deriveChild derives the keys of a CHILD_SA of sa made by an exchange
// with nonces ni and nr (and, with PFS, DH secret gir: RFC 7296 section
// 2.17) and describes it for the data plane (AES-256-GCM, the only ESP
// transform the data planes implement), traffic selectors left to the
// caller. The exchange's requester sends with the initiator's key, in
// IKE_AUTH and in CREATE_CHILD_SA alike.
func (d *Daemon) deriveChild(sa *ikeSA, cs *ikev2.Suite, gir, ni, nr []byte, in, out uint32, requester bool) (dataplane.ChildSA, error) {
	ck, err := cs.ChildKeys(sa.suite.PRF, sa.keys.SKd, gir, ni, nr)
	if err != nil {
		return dataplane.ChildSA{}, err
	}
	inKey, outKey := ck.EncrI, ck.EncrR
	if requester {
		inKey, outKey = ck.EncrR, ck.EncrI
	}
	return dataplane.ChildSA{InSPI: in, OutSPI: out, Local: d.localAddr(sa.natT), Remote: sa.remote, Encap: sa.natT,
		Alg: dataplane.AlgAES256GCM16, InKey: inKey, OutKey: outKey, ESN: cs.ESN, Lifetime: d.childLifetime()}, nil
}

// childLifetime is a new CHILD_SA's lifetime: both ends rekey at a
// random point of the rekey margin before ChildLifetime (rekeyAfter) and
// at a random 80-90 % of ChildBytes and ChildPackets (the jitter makes
// simultaneous rekeys rare, collide.go settles the rest) and delete it at
// 100 %.
func (d *Daemon) childLifetime() dataplane.Lifetime {
	var lt dataplane.Lifetime
	if l := d.cfg.ChildLifetime; l > 0 {
		lt.SoftTime, lt.HardTime = d.rekeyAfter(l), l
	}
	if b := d.cfg.ChildBytes; b > 0 {
		lt.SoftBytes, lt.HardBytes = uint64(jitter(time.Duration(b), 80, 90)), b
	}
	if p := d.cfg.ChildPackets; p > 0 {
		lt.SoftPackets, lt.HardPackets = uint64(jitter(time.Duration(p), 80, 90)), p
	}
	return lt
}

// install puts c into the data plane and adds it to sa.
func (d *Daemon) install(sa *ikeSA, c dataplane.ChildSA) (*child, error) {
	if err := d.cfg.DataPlane.Install(context.Background(), c); err != nil {
		return nil, fmt.Errorf("install CHILD_SA %08x/%08x: %w", c.InSPI, c.OutSPI, err)
	}
	nc := &child{cfg: c, installed: time.Now()}
	sa.children = append(sa.children, nc)
	return nc, nil
}

// dropChild removes c from the data plane and from sa, once.
func (d *Daemon) dropChild(sa *ikeSA, c *child) {
	if i := slices.Index(sa.children, c); i >= 0 {
		d.cfg.DataPlane.Remove(context.Background(), c.cfg.InSPI, c.cfg.OutSPI)
		sa.children = slices.Delete(sa.children, i, i+1)
	}
}

// childByOut is sa's CHILD_SA with outbound SPI spi, or nil.
func (sa *ikeSA) childByOut(spi uint32) *child {
	for _, c := range sa.children {
		if c.cfg.OutSPI == spi {
			return c
		}
	}
	return nil
}

// childBySPI finds a CHILD_SA by its inbound or outbound SPI.
func (d *Daemon) childBySPI(spi uint32, inbound bool) (*ikeSA, *child) {
	for _, sa := range d.sas {
		for _, c := range sa.children {
			if (inbound && c.cfg.InSPI == spi) || (!inbound && c.cfg.OutSPI == spi) {
				return sa, c
			}
		}
	}
	return nil, nil
}

// expired handles the data plane's lifetime events (ipsec/esp and
// ipsec/xfrm both send them): a soft expiry rekeys the CHILD_SA, a hard
// one (the data plane already removed it) tells the peer to delete its
// side too. Either waits for the window of one if it is busy (childDue).
func (d *Daemon) expired(ev dataplane.ExpireEvent) {
	d.mu.Lock()
	defer d.mu.Unlock()
	sa, c := d.childBySPI(ev.SPI, ev.Inbound)
	if c == nil {
		d.log.Debug("ike: expiry for an SA we no longer hold", "spi", fmt.Sprintf("%08x", ev.SPI), "kind", ev.Kind)
		return
	}
	d.log.Info("ike: CHILD_SA expired", "peer", peerName(sa), "spi", fmt.Sprintf("%08x", ev.SPI), "inbound", ev.Inbound, "kind", ev.Kind, "reason", ev.Reason)
	switch {
	case ev.Kind == dataplane.Hard:
		// A rekey of it (ours in flight, or the peer's) may still
		// replace it; it is only never rekeyed again from here.
		d.cfg.DataPlane.Remove(bgctx(), c.cfg.InSPI, c.cfg.OutSPI)
		c.dead, c.rekeyDue = true, false
	case !c.replaced:
		c.rekeyDue = true
	}
	if sa.st == stEstablished && sa.pending == nil {
		d.childDue(sa)
	}
}

// childDue starts the CHILD_SA work an expiry left waiting: the DELETE of
// a hard-expired CHILD_SA first, else a rekey. The caller checked that the
// window is free.
func (d *Daemon) childDue(sa *ikeSA) {
	for _, c := range sa.children {
		if c.dead && !c.rekeying { // else the rekey's answer deletes it
			c.dead = false
			if err := d.deleteChild(sa, c); err != nil {
				d.log.Warn("ike: cannot send DELETE for an expired CHILD_SA", "peer", peerName(sa), "spi", fmt.Sprintf("%08x", c.cfg.InSPI), "err", err)
				d.dropChild(sa, c)
			}
			return
		}
	}
	for _, c := range sa.children {
		if c.rekeyDue && !c.replaced && !c.dead {
			if ok, _ := d.rekeyChild(sa, c); ok {
				c.rekeyDue = false
				return
			}
		}
	}
}
