package ike

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"ferry/ipsec/ikev2"
)

// CREATE_CHILD_SA rekeying the IKE SA (RFC 7296 sections 1.3.2 and
// 2.18): a new IKE SA, keyed from the old SK_d and a fresh DH, takes over
// the CHILD_SAs, the peer's identity and lease (moveSA); the end that
// started the rekey deletes the old one, which waits for that DELETE at
// most RekeyGrace (retire.go). Crossing rekeys are settled by the nonces
// (settleIKECollision, collide.go).
//
// Initiator: rekeyIKE (jittered IKELifetime, tickSA, or RekeyIKE),
// rekeyIKEReply, settleIKECollision. Responder: rekeyIKEResponse, reached
// from respondCreateChild (exchange_child_rekey.go).

// Initiator.

// RekeyIKE rekeys every established IKE SA now (operators, tests);
// normally Config.IKELifetime triggers it. It returns how many started.
func (d *Daemon) RekeyIKE() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, sa := range d.sas {
		if ok, _ := d.rekeyIKE(sa); ok {
			n++
		}
	}
	return n
}

// rekeyIKE replaces sa with a new IKE SA (RFC 7296 section 1.3.2): fresh
// SPIs, nonces and DH, SKEYSEED derived from the old SK_d. The CHILD_SAs,
// the peer's identity and its lease move to the new SA, then the old one
// is deleted.
func (d *Daemon) rekeyIKE(sa *ikeSA) (bool, error) {
	if sa.st != stEstablished || sa.pending != nil {
		return false, nil
	}
	dh, err := ikev2.NewDH(sa.suite.DHGroup, rand.Reader)
	if err != nil {
		return false, err
	}
	ni, spi := nonce(), d.newSPI()
	prop := proposal(d.cfg.IKEPolicy, binary.BigEndian.AppendUint64(nil, spi), true)
	out := []ikev2.Payload{&ikev2.SA{Proposals: []ikev2.Proposal{prop}}, &ikev2.Nonce{Data: ni}, dh.KE()}
	sa.rekeyNi = ni
	err = d.request(sa, ikev2.CREATE_CHILD_SA, out, func(m *ikev2.Message) {
		err := d.rekeyIKEReply(sa, m, dh, ni, spi)
		sa.rekeyNi, sa.rival = nil, nil
		if err != nil {
			d.log.Warn("ike: IKE SA rekey failed", "peer", peerName(sa), "err", err)
			d.counts.rekeyFailures.Add(1)
		}
	}, nil)
	return err == nil, err
}

// rekeyIKEReply makes the new IKE SA the peer agreed to and deletes the
// old one (or settles a simultaneous rekey).
func (d *Daemon) rekeyIKEReply(sa *ikeSA, m *ikev2.Message, dh *ikev2.DH, ni []byte, spi uint64) error {
	if n := errorNotify(m.Payloads); n != nil {
		return fmt.Errorf("peer refused: %s", n.Kind)
	}
	sp, nr, ke := find[*ikev2.SA](m.Payloads), find[*ikev2.Nonce](m.Payloads), find[*ikev2.KE](m.Payloads)
	if sp == nil || nr == nil || ke == nil || len(sp.Proposals) != 1 || len(sp.Proposals[0].SPI) != 8 {
		return errors.New("response lacks SA (8-byte SPI), Nonce or KE")
	}
	if _, err := d.cfg.IKEPolicy.Select(sp); err != nil {
		return fmt.Errorf("peer chose what we did not offer: %w", err)
	}
	cs, err := ikev2.NewSuite(sp.Proposals[0])
	if err != nil {
		return err
	}
	if ke.Group != dh.Group() {
		return fmt.Errorf("KE group %d, sent %d", ke.Group, dh.Group())
	}
	gir, err := dh.SharedSecret(ke.Data)
	if err != nil {
		return err
	}
	n, err := d.moveSA(sa, cs, true, spi, binary.BigEndian.Uint64(sp.Proposals[0].SPI), ni, nr.Data, gir)
	if err != nil {
		return err
	}
	if r := sa.rival; r != nil {
		return d.settleIKECollision(sa, n, r, redundant(ni, nr.Data, r.nonce))
	}
	d.log.Info("ike: IKE SA rekeyed", "peer", peerName(n), "old", fmt.Sprintf("%016x", sa.localSPI()), "new", fmt.Sprintf("%016x", n.localSPI()))
	d.counts.ikeRekeys.Add(1)
	return d.deleteIKE(sa, "rekeyed")
}

// settleIKECollision ends a simultaneous IKE SA rekey (RFC 7296 section
// 2.8.2) once our exchange made n and the peer's made r.sa: the CHILD_SAs
// and the lease live on in the survivor; we delete n if it is redundant,
// else we delete old, and the peer deletes what it made.
func (d *Daemon) settleIKECollision(old, n *ikeSA, r *ikeRival, lost bool) error {
	survivor, gone := r.sa, n
	if !lost {
		survivor, gone = n, r.sa
		n.children, r.sa.children = r.sa.children, nil
	}
	d.retireIKE(gone)
	d.log.Info("ike: simultaneous IKE SA rekey", "peer", peerName(old), "old", fmt.Sprintf("%016x", old.localSPI()),
		"survivor", fmt.Sprintf("%016x", survivor.localSPI()), "redundant", fmt.Sprintf("%016x", gone.localSPI()), "ours_redundant", lost)
	if lost {
		return d.deleteIKE(gone, "redundant after a simultaneous rekey")
	}
	return d.deleteIKE(old, "rekeyed")
}

// Responder.

// rekeyIKEResponse answers a peer's IKE SA rekey.
func (d *Daemon) rekeyIKEResponse(sa *ikeSA, sp *ikev2.SA, ni *ikev2.Nonce, ke *ikev2.KE) ([]ikev2.Payload, *refusal) {
	if ni == nil || ke == nil {
		return nil, &refusal{ikev2.INVALID_SYNTAX, errors.New("IKE rekey without Nonce or KE")}
	}
	prop, err := d.cfg.IKEPolicy.Select(sp)
	if err != nil || len(prop.SPI) != 8 {
		return nil, &refusal{ikev2.NO_PROPOSAL_CHOSEN, fmt.Errorf("IKE rekey proposal: %v", err)}
	}
	cs, err := ikev2.NewSuite(prop)
	if err != nil {
		return nil, &refusal{ikev2.NO_PROPOSAL_CHOSEN, err}
	}
	if ke.Group != cs.DHGroup {
		return []ikev2.Payload{&ikev2.Notify{Kind: ikev2.INVALID_KE_PAYLOAD, Data: binary.BigEndian.AppendUint16(nil, cs.DHGroup)}}, nil
	}
	dh, err := ikev2.NewDH(cs.DHGroup, rand.Reader)
	var gir []byte
	if err == nil {
		gir, err = dh.SharedSecret(ke.Data)
	}
	if err != nil {
		return nil, &refusal{ikev2.INVALID_SYNTAX, err}
	}
	nr, spir := nonce(), d.newSPI()
	n, err := d.moveSA(sa, cs, false, binary.BigEndian.Uint64(prop.SPI), spir, ni.Data, nr, gir)
	if err != nil {
		return nil, &refusal{ikev2.NO_PROPOSAL_CHOSEN, err}
	}
	if sa.rekeyNi != nil {
		// Our own rekey of sa is in flight: settled when its answer
		// comes (collide.go).
		sa.rival = &ikeRival{nonce: lowest(ni.Data, nr), sa: n}
	}
	prop.SPI = binary.BigEndian.AppendUint64(nil, spir)
	return []ikev2.Payload{&ikev2.SA{Proposals: []ikev2.Proposal{prop}}, &ikev2.Nonce{Data: nr}, dh.KE()}, nil
}

// Both roles.

// moveSA makes the IKE SA that replaces old and moves everything that
// outlives the rekey into it; old only waits for its DELETE.
func (d *Daemon) moveSA(old *ikeSA, cs *ikev2.Suite, requester bool, spii, spir uint64, ni, nr, gir []byte) (*ikeSA, error) {
	seed := ikev2.RekeySKEYSEED(old.suite.PRF, old.keys.SKd, gir, ni, nr)
	keys, err := cs.IKEKeys(seed, ni, nr, spii, spir)
	if err != nil {
		return nil, err
	}
	c, err := cs.NewCipher(keys, requester, rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	n := &ikeSA{initiator: requester, origin: old.origin, spii: spii, spir: spir, st: stEstablished, remote: old.remote,
		natT: old.natT, behindNAT: old.behindNAT, suite: cs, keys: keys, cipher: c, ni: ni, nr: nr, fragOK: old.fragOK,
		peer: old.peer, lease: old.lease, vip: old.vip, dns: old.dns, children: old.children, created: now, lastRecv: now, target: old.target}
	old.children = nil
	d.retireIKE(old)
	d.sas[n.localSPI()] = n
	return n, nil
}
