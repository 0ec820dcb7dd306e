package ike

import (
	"encoding/binary"

	"ferry/ipsec/ikev2"
)

// INFORMATIONAL (RFC 7296 section 1.4): DELETE of the IKE SA or of
// CHILD_SAs, and liveness checks (an empty request, section 2.4). A DELETE
// of the IKE SA is answered empty and the SA goes; a DELETE of CHILD_SAs
// is answered with a DELETE of our inbound halves of them; an
// AUTHENTICATION_FAILED notify (the peer refused our AUTH after all,
// section 2.21.2) ends the IKE SA too. When to check liveness (DPD,
// unanswered ESP, INVALID_IKE_SPI) is decided in liveness.go; an
// unanswered check gives up the SA like any other request (tickSA).
//
// Initiator: deleteChild, deleteIKE (after a rekey), sendDeleteNow
// (shutdown, revocation, a refused CHILD_SA: no answer awaited),
// checkLiveness. Responder: respondInfo, deleteChildren.

// Initiator.

// deleteChild asks the peer to delete a CHILD_SA and removes it when the
// peer answers.
func (d *Daemon) deleteChild(sa *ikeSA, c *child) error {
	del := &ikev2.Delete{Protocol: ikev2.ProtoESP, SPISize: 4, SPIs: [][]byte{binary.BigEndian.AppendUint32(nil, c.cfg.InSPI)}}
	return d.request(sa, ikev2.INFORMATIONAL, []ikev2.Payload{del}, func(*ikev2.Message) { d.dropChild(sa, c) }, nil)
}

// deleteIKE asks the peer to delete the IKE SA sa and forgets it, for
// reason, when the peer answers.
func (d *Daemon) deleteIKE(sa *ikeSA, reason string) error {
	del := []ikev2.Payload{&ikev2.Delete{Protocol: ikev2.ProtoIKE}}
	return d.request(sa, ikev2.INFORMATIONAL, del, func(*ikev2.Message) { d.removeSA(sa, reason) }, nil)
}

// checkLiveness sends an empty INFORMATIONAL request: any authenticated
// answer shows the peer alive, none gives the SA up (tickSA). The caller
// checked that the window is free.
func (d *Daemon) checkLiveness(sa *ikeSA) error {
	return d.request(sa, ikev2.INFORMATIONAL, nil, func(*ikev2.Message) {}, nil)
}

// sendDeleteNow tells the peer the IKE SA is gone, once, without waiting
// for the answer (shutdown, revocation).
func (d *Daemon) sendDeleteNow(sa *ikeSA) {
	if sa.cipher == nil {
		return
	}
	dg, err := d.seal(sa, sa.header(ikev2.INFORMATIONAL, sa.nextID, false), []ikev2.Payload{&ikev2.Delete{Protocol: ikev2.ProtoIKE}})
	if err == nil {
		d.send(sa, dg)
	}
	sa.st = stDeleting
}

// Responder.

// respondInfo answers INFORMATIONAL requests: liveness checks (empty),
// DELETE of the IKE SA or of CHILD_SAs (RFC 7296 section 1.4.1).
func (d *Daemon) respondInfo(sa *ikeSA, m *ikev2.Message) {
	var out []ikev2.Payload
	for _, p := range m.Payloads {
		del, ok := p.(*ikev2.Delete)
		if !ok {
			continue
		}
		if del.Protocol == ikev2.ProtoIKE {
			d.reply(sa, ikev2.INFORMATIONAL, nil)
			d.removeSA(sa, "peer deleted the IKE SA")
			return
		}
		if del.Protocol == ikev2.ProtoESP {
			if ours := d.deleteChildren(sa, del.SPIs); len(ours) > 0 {
				out = append(out, &ikev2.Delete{Protocol: ikev2.ProtoESP, SPISize: 4, SPIs: ours})
			}
		}
	}
	if n := errorNotify(m.Payloads); n != nil && n.Kind == ikev2.AUTHENTICATION_FAILED {
		d.reply(sa, ikev2.INFORMATIONAL, nil)
		d.removeSA(sa, "peer refused our authentication")
		return
	}
	d.reply(sa, ikev2.INFORMATIONAL, out)
}

// deleteChildren removes the CHILD_SAs whose outbound SPI the peer named
// and returns our inbound SPIs of them, for the answer.
func (d *Daemon) deleteChildren(sa *ikeSA, spis [][]byte) [][]byte {
	var ours [][]byte
	for _, s := range spis {
		if len(s) != 4 {
			continue
		}
		out := binary.BigEndian.Uint32(s)
		for i, c := range sa.children {
			if c.cfg.OutSPI == out {
				d.cfg.DataPlane.Remove(bgctx(), c.cfg.InSPI, c.cfg.OutSPI)
				ours = append(ours, binary.BigEndian.AppendUint32(nil, c.cfg.InSPI))
				sa.children = append(sa.children[:i], sa.children[i+1:]...)
				break
			}
		}
	}
	return ours
}
