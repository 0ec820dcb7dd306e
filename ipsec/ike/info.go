package ike

import (
	"encoding/binary"

	"ferry/ipsec/ikev2"
)

// handleRequest dispatches a decrypted request on a known SA.
func (d *Daemon) handleRequest(sa *ikeSA, m *ikev2.Message) {
	if sa.st == stRefused {
		return // only its IKE_AUTH is answered, from the cache
	}
	switch m.Header.Exchange {
	case ikev2.IKE_AUTH:
		if sa.st == stHalfOpen {
			d.respondAuth(sa, m)
		}
	case ikev2.INFORMATIONAL:
		d.respondInfo(sa, m)
	case ikev2.CREATE_CHILD_SA:
		switch sa.st {
		case stEstablished:
			d.respondCreateChild(sa, m)
		case stDeleting:
			// RFC 7296 section 2.25: a rekey raced with our DELETE of
			// this SA (we rekeyed it or are shutting it down).
			d.log.Info("ike: refused CREATE_CHILD_SA", "peer", peerName(sa), "notify", ikev2.TEMPORARY_FAILURE, "reason", "the IKE SA is being deleted")
			d.reply(sa, ikev2.CREATE_CHILD_SA, []ikev2.Payload{&ikev2.Notify{Kind: ikev2.TEMPORARY_FAILURE}})
		}
	}
}

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
