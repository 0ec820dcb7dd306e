package ike

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"ferry/ipsec/ikev2"
)

// CREATE_CHILD_SA rekeying a CHILD_SA (RFC 7296 sections 1.3.3 and
// 2.8): a new CHILD_SA with fresh keys (and, as configured, a fresh DH:
// PFS) replaces the old one, which keeps decrypting for a grace
// (retire.go) until the end that started the rekey deletes it. Crossing
// rekeys of the same CHILD_SA are settled by the nonces (collide.go).
// Rekeying the IKE SA, the other use of the exchange, is in
// exchange_ike_rekey.go.
//
// Initiator: rekeyChild (on the data plane's soft expiry, childDue, or
// RekeyChildren), rekeyChildReply, then deleteChild of the old one.
// Responder: respondCreateChild, which tells the two uses apart, and
// rekeyChildResponse.

// Initiator.

// RekeyChildren rekeys every CHILD_SA now (operators, tests); normally
// the data plane's soft expiry triggers it. It returns how many rekeys
// started; SAs busy with another exchange are skipped.
func (d *Daemon) RekeyChildren() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, sa := range d.sas {
		for _, c := range sa.children {
			if ok, _ := d.rekeyChild(sa, c); ok {
				n++
				break
			}
		}
	}
	return n
}

// rekeyChild starts a CREATE_CHILD_SA exchange replacing old with a new
// CHILD_SA with fresh keys and, as configured, a fresh DH exchange (PFS,
// RFC 7296 section 1.3.3). The new SA is installed before the old one is
// deleted, so no packet is lost. It reports whether the exchange started
// (the window of one may be busy).
func (d *Daemon) rekeyChild(sa *ikeSA, old *child) (bool, error) {
	if sa.st != stEstablished || sa.pending != nil || old.rekeying || old.replaced || old.dead {
		return false, nil
	}
	group := d.cfg.ESPPolicy.DH[0]
	dh, err := ikev2.NewDH(group, rand.Reader)
	if err != nil {
		return false, err
	}
	ni, in := nonce(), newChildSPI()
	spi := binary.BigEndian.AppendUint32(nil, in)
	out := []ikev2.Payload{
		&ikev2.Notify{Protocol: ikev2.ProtoESP, SPI: binary.BigEndian.AppendUint32(nil, old.cfg.InSPI), Kind: ikev2.REKEY_SA},
		&ikev2.SA{Proposals: []ikev2.Proposal{proposal(d.cfg.ESPPolicy, spi, true)}},
		&ikev2.Nonce{Data: ni}, dh.KE(),
		&ikev2.TS{Selectors: Selectors(tsOf(sa, old, true))}, &ikev2.TS{Responder: true, Selectors: Selectors(tsOf(sa, old, false))},
	}
	old.rekeying = true
	err = d.request(sa, ikev2.CREATE_CHILD_SA, out, func(m *ikev2.Message) {
		old.rekeying = false
		err := d.rekeyChildReply(sa, old, m, dh, ni, in)
		if err != nil && old.rival != nil {
			d.retire(sa, old) // the peer's crossing rekey stands; it deletes old
		}
		old.rival = nil
		if err != nil {
			d.log.Warn("ike: CHILD_SA rekey failed", "peer", peerName(sa), "spi", fmt.Sprintf("%08x", old.cfg.InSPI), "err", err)
			d.counts.rekeyFailures.Add(1)
		}
	}, nil)
	return err == nil, err
}

// tsOf returns the initiator's (tsi) or responder's selectors of a child
// as seen in the original IKE_AUTH roles.
func tsOf(sa *ikeSA, c *child, tsi bool) []netip.Prefix {
	if tsi == sa.origin {
		return c.cfg.TSLocal
	}
	return c.cfg.TSRemote
}

// rekeyChildReply installs the CHILD_SA the peer agreed to and deletes
// old, or, having lost a simultaneous rekey, deletes ours.
func (d *Daemon) rekeyChildReply(sa *ikeSA, old *child, m *ikev2.Message, dh *ikev2.DH, ni []byte, in uint32) error {
	if n := errorNotify(m.Payloads); n != nil {
		return fmt.Errorf("peer refused: %s", n.Kind)
	}
	sp, nr, ke := find[*ikev2.SA](m.Payloads), find[*ikev2.Nonce](m.Payloads), find[*ikev2.KE](m.Payloads)
	if nr == nil {
		return errors.New("response lacks a Nonce")
	}
	cs, err := d.acceptedESP(sp, false)
	if err != nil {
		return err
	}
	var gir []byte
	if cs.DHGroup != ikev2.DH_NONE {
		if ke == nil || ke.Group != dh.Group() {
			return errors.New("PFS group not answered with a matching KE")
		}
		if gir, err = dh.SharedSecret(ke.Data); err != nil {
			return err
		}
	}
	c, err := d.deriveChild(sa, cs, gir, ni, nr.Data, in, binary.BigEndian.Uint32(sp.Proposals[0].SPI), true)
	if err != nil {
		return err
	}
	c.TSLocal, c.TSRemote, c.VirtualIP = old.cfg.TSLocal, old.cfg.TSRemote, old.cfg.VirtualIP
	nc, err := d.install(sa, c)
	if err != nil {
		return err
	}
	if r := old.rival; r != nil && redundant(ni, nr.Data, r.nonce) {
		// Simultaneous rekey lost: ours goes, the peer's replaces old
		// and the peer deletes old.
		d.log.Info("ike: simultaneous CHILD_SA rekey: ours is redundant, deleting it", "peer", peerName(sa),
			"old", fmt.Sprintf("%08x", old.cfg.InSPI), "redundant", fmt.Sprintf("%08x", in), "survivor", fmt.Sprintf("%08x", r.child.cfg.InSPI))
		d.retire(sa, nc)
		return d.deleteChild(sa, nc)
	}
	if old.rival != nil {
		d.log.Info("ike: simultaneous CHILD_SA rekey: the peer's is redundant, the peer deletes it", "peer", peerName(sa),
			"redundant", fmt.Sprintf("%08x", old.rival.child.cfg.InSPI))
		d.retire(sa, old.rival.child)
	}
	d.retire(sa, old)
	d.log.Info("ike: CHILD_SA rekeyed", "peer", peerName(sa), "old", fmt.Sprintf("%08x", old.cfg.InSPI), "new", fmt.Sprintf("%08x", in), "pfs", gir != nil)
	d.counts.childRekeys.Add(1)
	return d.deleteChild(sa, old)
}

// Responder.

// respondCreateChild answers CREATE_CHILD_SA, for both of its uses: an
// IKE SA rekey (rekeyIKEResponse, exchange_ike_rekey.go) or a CHILD_SA
// rekey (REKEY_SA naming one of ours); additional CHILD_SAs are refused
// with NO_ADDITIONAL_SAS.
func (d *Daemon) respondCreateChild(sa *ikeSA, m *ikev2.Message) {
	var out []ikev2.Payload
	var r *refusal
	if sp := find[*ikev2.SA](m.Payloads); rekeysIKE(m.Payloads, sp) {
		out, r = d.rekeyIKEResponse(sa, sp, find[*ikev2.Nonce](m.Payloads), find[*ikev2.KE](m.Payloads))
	} else {
		out, r = d.rekeyChildResponse(sa, m.Payloads)
	}
	if r != nil {
		d.log.Info("ike: refused CREATE_CHILD_SA", "peer", peerName(sa), "notify", r.kind, "reason", r.reason)
		d.counts.refusedChildren.Add(1)
		out = []ikev2.Payload{&ikev2.Notify{Kind: r.kind}}
	}
	d.reply(sa, ikev2.CREATE_CHILD_SA, out)
}

// rekeysIKE reports whether a CREATE_CHILD_SA request with SA payload sp
// rekeys the IKE SA: it proposes IKE and names no CHILD_SA (REKEY_SA).
func rekeysIKE(ps []ikev2.Payload, sp *ikev2.SA) bool {
	return findNotify(ps, ikev2.REKEY_SA) == nil && sp != nil && len(sp.Proposals) > 0 && sp.Proposals[0].Protocol == ikev2.ProtoIKE
}

// rekeyChildResponse makes the CHILD_SA that replaces the one REKEY_SA
// names, installed but not yet sent on (the initiator installs its side
// when our answer arrives), and returns the payloads of the answer.
func (d *Daemon) rekeyChildResponse(sa *ikeSA, ps []ikev2.Payload) ([]ikev2.Payload, *refusal) {
	rk := findNotify(ps, ikev2.REKEY_SA)
	sp, ni, ke := find[*ikev2.SA](ps), find[*ikev2.Nonce](ps), find[*ikev2.KE](ps)
	if rk == nil || sp == nil || ni == nil {
		return nil, &refusal{ikev2.NO_ADDITIONAL_SAS, errors.New("only CHILD_SA rekeys are accepted")}
	}
	if rk.Protocol != ikev2.ProtoESP || len(rk.SPI) != 4 {
		return nil, &refusal{ikev2.NO_ADDITIONAL_SAS, fmt.Errorf("REKEY_SA for protocol %d", rk.Protocol)}
	}
	old := sa.childByOut(binary.BigEndian.Uint32(rk.SPI))
	if old == nil {
		return nil, &refusal{ikev2.CHILD_SA_NOT_FOUND, fmt.Errorf("no CHILD_SA with SPI %x", rk.SPI)}
	}
	if old.replaced {
		// RFC 7296 section 2.25: it is being deleted after a rekey.
		return nil, &refusal{ikev2.TEMPORARY_FAILURE, fmt.Errorf("CHILD_SA %x was already replaced by a rekey", rk.SPI)}
	}
	prop, cs, r := d.selectESP(sp, false)
	if r != nil {
		return nil, r
	}
	nr := nonce()
	out := []ikev2.Payload{}
	var gir []byte
	if cs.DHGroup != ikev2.DH_NONE {
		if ke == nil || ke.Group != cs.DHGroup {
			g := binary.BigEndian.AppendUint16(nil, cs.DHGroup)
			return []ikev2.Payload{&ikev2.Notify{Kind: ikev2.INVALID_KE_PAYLOAD, Data: g}}, nil
		}
		dh, err := ikev2.NewDH(cs.DHGroup, rand.Reader)
		if err == nil {
			gir, err = dh.SharedSecret(ke.Data)
		}
		if err != nil {
			return nil, &refusal{ikev2.INVALID_SYNTAX, err}
		}
		out = append(out, dh.KE())
	}
	in := newChildSPI()
	c, err := d.deriveChild(sa, cs, gir, ni.Data, nr, in, binary.BigEndian.Uint32(prop.SPI), false)
	if err != nil {
		return nil, &refusal{ikev2.NO_PROPOSAL_CHOSEN, err}
	}
	c.TSLocal, c.TSRemote, c.VirtualIP = old.cfg.TSLocal, old.cfg.TSRemote, old.cfg.VirtualIP
	c.Deferred = true // the peer installs it when our answer arrives: keep sending on old until then
	nc, err := d.install(sa, c)
	if err != nil {
		return nil, &refusal{ikev2.TEMPORARY_FAILURE, err}
	}
	if old.rekeying {
		// Our own rekey of old is in flight: whichever made the
		// redundant SA is settled when our answer comes (collide.go).
		old.rival = &rival{nonce: lowest(ni.Data, nr), child: nc}
	} else {
		d.retire(sa, old) // the peer deletes it next
	}
	prop.SPI = binary.BigEndian.AppendUint32(nil, in)
	out = append([]ikev2.Payload{&ikev2.SA{Proposals: []ikev2.Proposal{prop}}, &ikev2.Nonce{Data: nr}}, out...)
	return append(out, findTS(ps, false), findTS(ps, true)), nil
}
