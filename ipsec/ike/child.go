package ike

import (
	"context"
	"fmt"
	"time"

	"ferry/ipsec/dataplane"
	"ferry/ipsec/ikev2"
)

// CHILD_SA bookkeeping shared by IKE_AUTH and CREATE_CHILD_SA: the data
// plane's description of a new CHILD_SA, its lifetime, installing it.

// childConfig describes a CHILD_SA of sa for the data plane (AES-256-GCM,
// the only ESP transform the data planes implement).
func (d *Daemon) childConfig(sa *ikeSA, in, out uint32, inKey, outKey []byte, cs *ikev2.Suite) dataplane.ChildSA {
	return dataplane.ChildSA{InSPI: in, OutSPI: out, Local: d.localAddr(sa.natT), Remote: sa.remote, Encap: sa.natT,
		Alg: dataplane.AlgAES256GCM16, InKey: inKey, OutKey: outKey, ESN: cs.ESN, Lifetime: d.childLifetime()}
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
