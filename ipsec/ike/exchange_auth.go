package ike

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"ferry/ipsec/ikev2"
)

// IKE_AUTH (RFC 7296 section 1.2): the first encrypted exchange. Each end
// proves it holds the key of its certificate by signing its IKE_SA_INIT
// message (authenticator.go), the responder asks the allow list, hands
// out a virtual IP (CP) and narrows the traffic selectors, and both
// install the first CHILD_SA. A refused CHILD_SA leaves the IKE SA up at
// the responder; the initiator deletes it and fails the Connect.
//
// Initiator: sendAuth (sent by completeInit), authReply, initiatorChild.
// Responder: respondAuth, authenticate, initialContact, responderChild;
// holdRefused keeps a refused SA to answer its retransmissions.

// Initiator.

// sendAuth sends the initiator's IKE_AUTH request with the first CHILD_SA.
func (d *Daemon) sendAuth(sa *ikeSA) error {
	idi := d.ownID(false)
	auth, err := d.sign(sa, sa.initReq, sa.nr, sa.keys.SKpi, idi)
	if err != nil {
		return err
	}
	sa.childSPI = newChildSPI()
	out := []ikev2.Payload{idi}
	out = append(out, d.certPayloads()...)
	out = append(out, d.certReq(), auth)
	// Connect opens a fresh connection: the gateway may drop whatever SAs
	// of our key it still holds (RFC 7296 section 2.4); rekeys never come
	// here.
	out = append(out, &ikev2.Notify{Kind: ikev2.INITIAL_CONTACT})
	tsi := []ikev2.Selector{ikev2.SelectorFor(netip.PrefixFrom(d.cfg.Local, 32))}
	if sa.target.VirtualIP {
		out = append(out, &ikev2.CP{CfgType: ikev2.CfgRequest, Attrs: []ikev2.CfgAttr{{Type: ikev2.InternalIP4Address}, {Type: ikev2.InternalIP4DNS}}})
		tsi = Selectors(anyV4)
	}
	spi := binary.BigEndian.AppendUint32(nil, sa.childSPI)
	out = append(out, &ikev2.SA{Proposals: []ikev2.Proposal{proposal(d.cfg.ESPPolicy, spi, false)}},
		&ikev2.TS{Selectors: tsi}, &ikev2.TS{Responder: true, Selectors: Selectors(sa.target.RemoteSubnets)})
	return d.request(sa, ikev2.IKE_AUTH, out, func(m *ikev2.Message) { d.authReply(sa, m) }, nil)
}

// authReply completes the initiator's IKE_AUTH: authenticate the gateway,
// take the virtual IP and install the CHILD_SA.
func (d *Daemon) authReply(sa *ikeSA, m *ikev2.Message) {
	if n := errorNotify(m.Payloads); n != nil {
		if n.Kind != ikev2.AUTHENTICATION_FAILED {
			// Only the CHILD_SA was refused (RFC 7296 section 1.2): the
			// gateway holds an IKE SA we are about to forget.
			d.sendDeleteNow(sa)
		}
		d.fail(sa, fmt.Sprintf("gateway refused IKE_AUTH: %s", n.Kind))
		return
	}
	idr := find[*ikev2.ID](m.Payloads)
	auth := find[*ikev2.Auth](m.Payloads)
	if idr == nil || auth == nil {
		d.fail(sa, "IKE_AUTH response without IDr or AUTH")
		return
	}
	peer, err := d.verifyPeer(m.Payloads, idr)
	if err == nil {
		err = ikev2.VerifyAuth(peer.Cert.PublicKey, auth, ikev2.SignedOctets(sa.suite.PRF, sa.initResp, sa.ni, sa.keys.SKpr, idr))
	}
	if err != nil {
		d.fail(sa, "gateway not authenticated: "+err.Error())
		return
	}
	sa.peer = peer
	if err := d.initiatorChild(sa, m.Payloads); err != nil {
		d.sendDeleteNow(sa)
		d.fail(sa, "CHILD_SA: "+err.Error())
		return
	}
	sa.st = stEstablished
	for _, o := range d.sas {
		// The gateway dropped them on our INITIAL_CONTACT.
		if o != sa && o.origin && o.remote.Addr() == sa.remote.Addr() && o.st == stEstablished {
			d.removeSA(o, "replaced by a fresh connection")
		}
	}
	d.connected(&d.tunnel)
	d.log.Info("ike: SA up", "role", "initiator", "gateway", sa.remote, "peer", peer.Subject, "vip", sa.vip, "encap", sa.natT)
	if sa.result != nil {
		sa.result <- nil
		sa.result = nil
	}
}

// initiatorChild takes the gateway's ESP choice, virtual IP and
// narrowed selectors from the IKE_AUTH response and installs the CHILD_SA.
func (d *Daemon) initiatorChild(sa *ikeSA, ps []ikev2.Payload) error {
	sp := find[*ikev2.SA](ps)
	var tsi, tsr *ikev2.TS
	for _, p := range ps {
		if t, ok := p.(*ikev2.TS); ok && t.Responder {
			tsr = t
		} else if ok {
			tsi = t
		}
	}
	if tsi == nil || tsr == nil {
		return errors.New("response lacks TSi or TSr")
	}
	cs, err := d.acceptedESP(sp, true)
	if err != nil {
		return err
	}
	if cp := find[*ikev2.CP](ps); cp != nil && cp.CfgType == ikev2.CfgReply {
		for _, a := range cp.Attrs {
			switch {
			case a.Type == ikev2.InternalIP4Address && len(a.Value) == 4:
				sa.vip = netip.AddrFrom4([4]byte(a.Value))
			case a.Type == ikev2.InternalIP4DNS && len(a.Value) == 4 && len(sa.dns) < 4:
				sa.dns = append(sa.dns, netip.AddrFrom4([4]byte(a.Value)))
			}
		}
	}
	if sa.target.VirtualIP && !sa.vip.IsValid() {
		return errors.New("asked for a virtual IP, got none")
	}
	c, err := d.deriveChild(sa, cs, nil, sa.ni, sa.nr, sa.childSPI, binary.BigEndian.Uint32(sp.Proposals[0].SPI), true)
	if err != nil {
		return err
	}
	c.TSLocal, c.TSRemote = Narrow(tsi.Selectors, anyV4), Narrow(tsr.Selectors, anyV4)
	if sa.vip.IsValid() {
		c.VirtualIP = netip.PrefixFrom(sa.vip, 32)
	}
	_, err = d.install(sa, c)
	return err
}

// Responder.

// respondAuth authenticates an initiator (certificate to the CA, AUTH,
// allow list) and sets up its first CHILD_SA.
func (d *Daemon) respondAuth(sa *ikeSA, m *ikev2.Message) {
	d.leaveHalfOpen(sa)
	out, r := d.authenticate(sa, m.Payloads)
	if r != nil {
		d.log.Info("ike: refused peer", "from", sa.remote, "peer", peerName(sa), "notify", r.kind, "reason", r.reason)
		d.counts.refusedPeers.Add(1)
		d.reply(sa, ikev2.IKE_AUTH, []ikev2.Payload{&ikev2.Notify{Kind: r.kind}})
		d.holdRefused(sa, r.reason.Error())
		return
	}
	sa.st = stEstablished
	if findNotify(m.Payloads, ikev2.INITIAL_CONTACT) != nil {
		d.initialContact(sa)
	}
	childOut, r := d.responderChild(sa, m.Payloads)
	if r != nil {
		d.log.Info("ike: refused CHILD_SA", "peer", peerName(sa), "notify", r.kind, "reason", r.reason)
		d.counts.refusedChildren.Add(1)
		childOut = []ikev2.Payload{&ikev2.Notify{Kind: r.kind}}
	}
	d.reply(sa, ikev2.IKE_AUTH, append(out, childOut...))
	d.connected(d.keyConn(sa.peer.Pin))
	d.log.Info("ike: SA up", "role", "responder", "from", sa.remote, "peer", sa.peer.Subject, "lease", sa.lease, "vip", sa.vip, "encap", sa.natT)
}

// authenticate checks the initiator's certificate, AUTH and the allow
// list, and returns our IDr, CERT and AUTH payloads.
func (d *Daemon) authenticate(sa *ikeSA, ps []ikev2.Payload) ([]ikev2.Payload, *refusal) {
	idi, auth := find[*ikev2.ID](ps), find[*ikev2.Auth](ps)
	if idi == nil || auth == nil || idi.Responder {
		return nil, &refusal{ikev2.INVALID_SYNTAX, errors.New("IKE_AUTH without IDi or AUTH")}
	}
	peer, err := d.verifyPeer(ps, idi)
	if err == nil {
		err = ikev2.VerifyAuth(peer.Cert.PublicKey, auth, ikev2.SignedOctets(sa.suite.PRF, sa.initReq, sa.nr, sa.keys.SKpi, idi))
	}
	if err != nil {
		return nil, &refusal{ikev2.AUTHENTICATION_FAILED, err}
	}
	sa.peer = peer
	if d.cfg.Authorizer != nil {
		e, err := d.cfg.Authorizer.Allow(peer.Pin)
		if ca, ok := d.cfg.Authorizer.(CertAuthorizer); ok {
			e, err = ca.AllowCert(peer.Cert)
		}
		if err != nil {
			return nil, &refusal{ikev2.AUTHENTICATION_FAILED, err}
		}
		sa.lease, sa.fixedVIP = e.Lease, e.VirtualIP
	}
	idr := d.ownID(true)
	a, err := d.sign(sa, sa.initResp, sa.ni, sa.keys.SKpr, idr)
	if err != nil {
		return nil, &refusal{ikev2.AUTHENTICATION_FAILED, fmt.Errorf("sign our AUTH: %w", err)}
	}
	out := append([]ikev2.Payload{idr}, d.certPayloads()...)
	return append(out, a), nil
}

// initialContact removes the older SAs of sa's peer key: the peer says,
// authenticated, that it kept no state of them (it rebooted, or its
// keeper restarted), RFC 7296 section 2.4. Their CHILD_SAs go before the
// new one is installed, so the key's address is never routed to two of
// them. Nothing is sent for them: the peer no longer knows their keys.
func (d *Daemon) initialContact(sa *ikeSA) {
	for _, o := range d.sas {
		if o != sa && !o.origin && o.peer != nil && o.peer.Pin == sa.peer.Pin && o.st != stRefused {
			d.log.Info("ike: INITIAL_CONTACT replaces an older SA of the key", "peer", peerName(sa), "lease", sa.lease,
				"old", fmt.Sprintf("%016x", o.localSPI()), "new", fmt.Sprintf("%016x", sa.localSPI()))
			d.removeSA(o, "replaced by the peer's fresh connection (INITIAL_CONTACT)")
		}
	}
}

// responderChild negotiates the first CHILD_SA: ESP proposal, virtual IP,
// narrowed traffic selectors; it installs the SA and returns the payloads
// for the response.
func (d *Daemon) responderChild(sa *ikeSA, ps []ikev2.Payload) ([]ikev2.Payload, *refusal) {
	sp, tsi, tsr := find[*ikev2.SA](ps), findTS(ps, false), findTS(ps, true)
	if sp == nil || tsi == nil || tsr == nil {
		return nil, &refusal{ikev2.INVALID_SYNTAX, errors.New("no SA, TSi or TSr")}
	}
	prop, cs, r := d.selectESP(sp, true)
	if r != nil {
		return nil, r
	}
	var out []ikev2.Payload
	peerSide := []netip.Prefix{netip.PrefixFrom(sa.remote.Addr(), 32)}
	if cp := find[*ikev2.CP](ps); cp != nil && cp.CfgType == ikev2.CfgRequest && d.cfg.Pool != nil {
		vip, err := sa.fixedVIP, error(nil)
		if vip.IsValid() {
			err = d.cfg.Pool.AcquireAt(sa.peer.Pin, vip)
		} else {
			vip, err = d.cfg.Pool.AcquireExcept(sa.peer.Pin, d.reserved())
		}
		if err != nil {
			return nil, &refusal{ikev2.INTERNAL_ADDRESS_FAILURE, err}
		}
		sa.vip, peerSide = vip, []netip.Prefix{netip.PrefixFrom(vip, 32)}
		attrs := []ikev2.CfgAttr{{Type: ikev2.InternalIP4Address, Value: vip.AsSlice()}}
		for _, a := range d.cfg.DNS {
			if a.Is4() && slices.ContainsFunc(cp.Attrs, func(c ikev2.CfgAttr) bool { return c.Type == ikev2.InternalIP4DNS }) {
				attrs = append(attrs, ikev2.CfgAttr{Type: ikev2.InternalIP4DNS, Value: a.AsSlice()})
			}
		}
		out = append(out, &ikev2.CP{CfgType: ikev2.CfgReply, Attrs: attrs})
	}
	tsI, tsR := Narrow(tsi.Selectors, peerSide), Narrow(tsr.Selectors, d.cfg.LocalSubnets)
	if len(tsI) == 0 || len(tsR) == 0 {
		return nil, &refusal{ikev2.TS_UNACCEPTABLE, fmt.Errorf("TSi %v / TSr %v outside %v / %v", tsi.Selectors, tsr.Selectors, peerSide, d.cfg.LocalSubnets)}
	}
	in := newChildSPI()
	c, err := d.deriveChild(sa, cs, nil, sa.ni, sa.nr, in, binary.BigEndian.Uint32(prop.SPI), false)
	if err != nil {
		return nil, &refusal{ikev2.NO_PROPOSAL_CHOSEN, err}
	}
	c.TSLocal, c.TSRemote = tsR, tsI
	if _, err := d.install(sa, c); err != nil {
		return nil, &refusal{ikev2.TEMPORARY_FAILURE, err}
	}
	prop.SPI = binary.BigEndian.AppendUint32(nil, in)
	return append(out, &ikev2.SA{Proposals: []ikev2.Proposal{prop}},
		&ikev2.TS{Selectors: Selectors(tsI)}, &ikev2.TS{Responder: true, Selectors: Selectors(tsR)}), nil
}

// holdRefused keeps a refused SA only so that a retransmission of its
// IKE_AUTH gets the same refusal from the response cache (RFC 7296
// section 2.1), rather than silence and a peer waiting out its back-off.
// It is bounded like the half-open SAs (HalfOpenMax, then dropped at
// once) and in time (RefusalHold), and keeps no more than the cached
// answer and the keys to recognise the retransmission.
func (d *Daemon) holdRefused(sa *ikeSA, reason string) {
	if d.refused >= d.cfg.HalfOpenMax {
		d.removeSA(sa, reason)
		return
	}
	d.refused++
	sa.st, sa.created = stRefused, time.Now()
	sa.dh, sa.initReq, sa.initResp, sa.reasm, sa.peer = nil, nil, nil, nil, nil
}

// addressFixer is an Authorizer whose entries may fix their keys'
// virtual IPs (authz.List).
type addressFixer interface {
	FixedAddresses() map[netip.Addr]string
}

// reserved is the addresses the allow list fixes, by the pin they belong
// to: a key without one of its own never gets them.
func (d *Daemon) reserved() map[netip.Addr]string {
	if f, ok := d.cfg.Authorizer.(addressFixer); ok {
		return f.FixedAddresses()
	}
	return nil
}
