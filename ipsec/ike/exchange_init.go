package ike

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"time"

	"ferry/ipsec/ikev2"
)

// IKE_SA_INIT (RFC 7296 section 1.2): the first exchange, in the clear.
// It agrees on the IKE proposal, runs the DH exchange and swaps nonces,
// from which both ends derive the IKE SA's keys (deriveIKE), and detects
// NATs between them (section 2.23, natPayloads and natCheck), which moves
// both ends to the NAT-T port. The responder keeps no state until it has
// accepted a request (COOKIE, INVALID_KE_PAYLOAD and NO_PROPOSAL_CHOSEN
// answers are stateless) and at most HalfOpenMax half-open SAs.
//
// Initiator: sendInit, initReply (a COOKIE or INVALID_KE_PAYLOAD answer
// restarts it), completeInit, which goes on with IKE_AUTH (sendAuth).
// Responder: respondInit, cookieOK, acceptInit; refuseInit and notifyInit
// answer with a notification only.

// Initiator.

// sendInit sends (or, after a COOKIE or INVALID_KE_PAYLOAD, sends again)
// the IKE_SA_INIT request with a DH key of group.
func (d *Daemon) sendInit(sa *ikeSA, group uint16) error {
	dh, err := ikev2.NewDH(group, rand.Reader)
	if err != nil {
		return err
	}
	sa.dh = dh
	var out []ikev2.Payload
	if sa.cookie != nil {
		out = append(out, &ikev2.Notify{Kind: ikev2.COOKIE, Data: sa.cookie})
	}
	out = append(out, &ikev2.SA{Proposals: []ikev2.Proposal{proposal(d.cfg.IKEPolicy, nil, true)}}, dh.KE(), &ikev2.Nonce{Data: sa.ni})
	out = append(out, natPayloads(sa.spii, 0, d.localAddr(false), sa.remote, d.cfg.ForceEncap)...)
	out = append(out, supportNotifies()...)
	m := ikev2.Message{Header: ikev2.Header{SPIi: sa.spii, Exchange: ikev2.IKE_SA_INIT, Flags: ikev2.FlagInitiator}, Payloads: out}
	if sa.initReq, err = m.Encode(); err != nil {
		return err
	}
	sa.pending = &request{exch: ikev2.IKE_SA_INIT, dgrams: [][]byte{sa.initReq}, sends: 1, due: time.Now().Add(d.cfg.Backoff.Delay(1))}
	d.send(sa, sa.pending.dgrams)
	return nil
}

// initReply handles the IKE_SA_INIT response: a cookie or group demand
// restarts the exchange, anything else completes it.
func (d *Daemon) initReply(sa *ikeSA, b []byte, h ikev2.Header) {
	m, err := ikev2.DecodeMessage(b)
	if err != nil {
		d.log.Info("ike: dropped malformed IKE_SA_INIT response", "from", sa.remote, "err", err)
		return
	}
	if n := findNotify(m.Payloads, ikev2.COOKIE); n != nil {
		// A repeated cookie is the answer to a retransmission of the
		// request we already redid: ignore it.
		if !bytes.Equal(n.Data, sa.cookie) && len(n.Data) <= 64 && sa.restarts < 4 {
			sa.cookie = n.Data
			sa.restarts++
			d.sendInit(sa, sa.dh.Group())
		}
		return
	}
	if n := findNotify(m.Payloads, ikev2.INVALID_KE_PAYLOAD); n != nil && len(n.Data) == 2 {
		g := binary.BigEndian.Uint16(n.Data)
		switch {
		case g == sa.dh.Group():
			return // stale: answers the request before our retry
		case slices.Contains(d.cfg.IKEPolicy.DH, g) && sa.restarts < 4:
			sa.restarts++
			d.sendInit(sa, g)
			return
		}
	}
	if n := errorNotify(m.Payloads); n != nil {
		d.fail(sa, fmt.Sprintf("gateway refused IKE_SA_INIT: %s", n.Kind))
		return
	}
	if err := d.completeInit(sa, m, h, b); err != nil {
		d.fail(sa, "IKE_SA_INIT response: "+err.Error())
	}
}

// completeInit takes the responder's choice, derives the keys, settles
// NAT-T and sends IKE_AUTH.
func (d *Daemon) completeInit(sa *ikeSA, m *ikev2.Message, h ikev2.Header, raw []byte) error {
	sp, ke, nr := find[*ikev2.SA](m.Payloads), find[*ikev2.KE](m.Payloads), find[*ikev2.Nonce](m.Payloads)
	if sp == nil || ke == nil || nr == nil || len(sp.Proposals) != 1 {
		return errors.New("missing SA, KE or Nonce")
	}
	if _, err := d.cfg.IKEPolicy.Select(sp); err != nil {
		return fmt.Errorf("gateway chose what we did not offer: %w", err)
	}
	suite, err := ikev2.NewSuite(sp.Proposals[0])
	if err != nil {
		return err
	}
	if ke.Group != sa.dh.Group() || suite.DHGroup != ke.Group {
		return fmt.Errorf("KE group %d, sent %d", ke.Group, sa.dh.Group())
	}
	sa.suite, sa.spir, sa.nr = suite, h.SPIr, nr.Data
	sa.initResp = raw
	if err := d.deriveIKE(sa, ke.Data); err != nil {
		return err
	}
	sa.fragOK = findNotify(m.Payloads, ikev2.IKEV2_FRAGMENTATION_SUPPORTED) != nil
	peerNAT, weNAT := natCheck(m.Payloads, sa.spii, sa.spir, d.localAddr(false), sa.remote)
	sa.behindNAT = weNAT || d.cfg.ForceEncap
	if peerNAT || weNAT || d.cfg.ForceEncap {
		sa.natT = true
		sa.remote = netip.AddrPortFrom(sa.remote.Addr(), d.cfg.NATPort)
	}
	sa.pending, sa.nextID, sa.st = nil, 1, stAuthSent
	return d.sendAuth(sa)
}

// Responder.

// respondInit answers an IKE_SA_INIT request (RFC 7296 section 1.2).
func (d *Daemon) respondInit(b []byte, h ikev2.Header, from netip.AddrPort, nat bool) {
	if sa := d.halfOpen[initKey{from, h.SPIi}]; sa != nil {
		d.sendTo(sa.initResp, from, nat) // retransmitted request
		return
	}
	m, err := ikev2.DecodeMessage(b)
	var uc *ikev2.UnsupportedCriticalError
	switch {
	case errors.As(err, &uc):
		d.refuseInit(h, from, nat, uc.Notify().Kind, uc.Notify().Data, err.Error())
		return
	case err != nil:
		d.log.Info("ike: dropped malformed IKE_SA_INIT", "from", from, "err", err)
		return
	case h.MessageID != 0:
		d.log.Info("ike: dropped IKE_SA_INIT with message ID", "from", from, "id", h.MessageID)
		return
	}
	req, err := parseInitRequest(m)
	if err != nil {
		d.refuseInit(h, from, nat, ikev2.INVALID_SYNTAX, nil, err.Error())
		return
	}
	if !d.cookieOK(m, req, h, from, nat) {
		return
	}
	if len(d.halfOpen) >= d.cfg.HalfOpenMax {
		d.log.Warn("ike: dropped IKE_SA_INIT: too many half-open SAs", "from", from, "limit", d.cfg.HalfOpenMax)
		return
	}
	d.acceptInit(b, h, m, req, from, nat)
}

// initRequest is the parts of an IKE_SA_INIT request the responder needs.
type initRequest struct {
	sa    *ikev2.SA
	ke    *ikev2.KE
	nonce *ikev2.Nonce
}

func parseInitRequest(m *ikev2.Message) (initRequest, error) {
	r := initRequest{sa: find[*ikev2.SA](m.Payloads), ke: find[*ikev2.KE](m.Payloads), nonce: find[*ikev2.Nonce](m.Payloads)}
	switch {
	case r.sa == nil:
		return r, errors.New("no SA payload")
	case r.ke == nil:
		return r, errors.New("no KE payload")
	case r.nonce == nil:
		return r, errors.New("no Nonce payload")
	}
	return r, nil
}

// cookieOK demands a COOKIE when too many SAs are half open (RFC 7296
// section 2.6) and checks the one returned.
func (d *Daemon) cookieOK(m *ikev2.Message, req initRequest, h ikev2.Header, from netip.AddrPort, nat bool) bool {
	if len(d.halfOpen) < d.cfg.CookieThreshold {
		return true
	}
	if n := findNotify(m.Payloads, ikev2.COOKIE); n != nil &&
		ikev2.CheckCookie(n.Data, req.nonce.Data, from.Addr(), h.SPIi, d.cookies.cur, d.cookies.prev) {
		return true
	}
	d.notifyInit(h, from, nat, ikev2.COOKIE, d.cookies.cur.Cookie(req.nonce.Data, from.Addr(), h.SPIi))
	return false
}

// acceptInit makes the half-open SA for an acceptable request and sends
// the IKE_SA_INIT response.
func (d *Daemon) acceptInit(b []byte, h ikev2.Header, m *ikev2.Message, req initRequest, from netip.AddrPort, nat bool) {
	prop, err := d.cfg.IKEPolicy.Select(req.sa)
	if err != nil {
		d.refuseInit(h, from, nat, ikev2.NO_PROPOSAL_CHOSEN, nil, err.Error())
		return
	}
	suite, err := ikev2.NewSuite(prop)
	if err != nil {
		d.refuseInit(h, from, nat, ikev2.NO_PROPOSAL_CHOSEN, nil, err.Error())
		return
	}
	if req.ke.Group != suite.DHGroup {
		g := binary.BigEndian.AppendUint16(nil, suite.DHGroup)
		d.refuseInit(h, from, nat, ikev2.INVALID_KE_PAYLOAD, g, fmt.Sprintf("KE group %d, selected %d", req.ke.Group, suite.DHGroup))
		return
	}
	now := time.Now()
	sa := &ikeSA{spii: h.SPIi, spir: d.newSPI(), st: stHalfOpen, remote: from, natT: nat, suite: suite,
		ni: req.nonce.Data, nr: nonce(), initReq: b, created: now, lastRecv: now,
		fragOK: findNotify(m.Payloads, ikev2.IKEV2_FRAGMENTATION_SUPPORTED) != nil}
	if err := d.deriveIKE(sa, req.ke.Data); err != nil {
		d.refuseInit(h, from, nat, ikev2.INVALID_SYNTAX, nil, err.Error())
		return
	}
	_, sa.behindNAT = natCheck(m.Payloads, sa.spii, 0, d.localAddr(nat), from)
	out := []ikev2.Payload{&ikev2.SA{Proposals: []ikev2.Proposal{prop}}, sa.dh.KE(), &ikev2.Nonce{Data: sa.nr}}
	out = append(out, natPayloads(sa.spii, sa.spir, d.localAddr(nat), from, d.cfg.ForceEncap)...)
	out = append(out, d.certReq(), supportNotifies()[0], supportNotifies()[1])
	resp := ikev2.Message{Header: ikev2.Header{SPIi: sa.spii, SPIr: sa.spir, Exchange: ikev2.IKE_SA_INIT, Flags: ikev2.FlagResponse}, Payloads: out}
	if sa.initResp, err = resp.Encode(); err != nil {
		d.log.Warn("ike: encode IKE_SA_INIT response", "err", err)
		return
	}
	sa.in.next = 1 // IKE_SA_INIT was message 0
	d.sas[sa.spir] = sa
	sa.openKey = initKey{from, sa.spii}
	d.halfOpen[sa.openKey] = sa
	d.sendTo(sa.initResp, from, nat)
}

// refuseInit answers an IKE_SA_INIT request with a notification,
// logging the refusal once per source, SPI and reason.
func (d *Daemon) refuseInit(h ikev2.Header, from netip.AddrPort, nat bool, kind ikev2.NotifyType, data []byte, reason string) {
	level := slog.LevelDebug // a retransmission of a request already refused
	if d.logged.first(refusalKey{from.Addr(), h.SPIi, reason}, time.Now(), d.cfg.RefusalHold, d.cfg.HalfOpenMax) {
		level = slog.LevelInfo
	}
	d.log.Log(context.Background(), level, "ike: refused IKE_SA_INIT", "from", from, "notify", kind, "reason", reason)
	d.notifyInit(h, from, nat, kind, data)
}

// notifyInit answers an IKE_SA_INIT request with one notification and
// keeps no state (RFC 7296 sections 2.6 and 2.21.1).
func (d *Daemon) notifyInit(h ikev2.Header, from netip.AddrPort, nat bool, kind ikev2.NotifyType, data []byte) {
	m := ikev2.Message{
		Header:   ikev2.Header{SPIi: h.SPIi, Exchange: ikev2.IKE_SA_INIT, Flags: ikev2.FlagResponse},
		Payloads: []ikev2.Payload{&ikev2.Notify{Kind: kind, Data: data}},
	}
	b, err := m.Encode()
	if err == nil {
		d.sendTo(b, from, nat)
	}
}

// Both roles.

// deriveIKE makes this side's DH key (responder) or uses the one sent
// (initiator), and derives SKEYSEED, the SA keys and the SK cipher.
func (d *Daemon) deriveIKE(sa *ikeSA, peerKE []byte) error {
	if sa.dh == nil {
		dh, err := ikev2.NewDH(sa.suite.DHGroup, rand.Reader)
		if err != nil {
			return err
		}
		sa.dh = dh
	}
	gir, err := sa.dh.SharedSecret(peerKE)
	if err != nil {
		return err
	}
	keys, err := sa.suite.IKEKeys(sa.suite.SKEYSEED(sa.ni, sa.nr, gir), sa.ni, sa.nr, sa.spii, sa.spir)
	if err != nil {
		return err
	}
	sa.keys = keys
	sa.cipher, err = sa.suite.NewCipher(keys, sa.initiator, rand.Reader)
	return err
}

// natPayloads are NAT_DETECTION_SOURCE_IP and _DESTINATION_IP (RFC 7296
// section 2.23); force fakes the source hash so the peer sees a NAT and
// both ends encapsulate.
func natPayloads(spii, spir uint64, local, remote netip.AddrPort, force bool) []ikev2.Payload {
	src := ikev2.NATDetectionHash(spii, spir, local)
	if force {
		src = nonce()[:sha1.Size]
	}
	return []ikev2.Payload{
		&ikev2.Notify{Kind: ikev2.NAT_DETECTION_SOURCE_IP, Data: src},
		&ikev2.Notify{Kind: ikev2.NAT_DETECTION_DESTINATION_IP, Data: ikev2.NATDetectionHash(spii, spir, remote)},
	}
}

// natCheck reports whether the peer and this side are behind a NAT, from
// the peer's NAT_DETECTION payloads; no payloads means no NAT-T support.
func natCheck(ps []ikev2.Payload, spii, spir uint64, local, remote netip.AddrPort) (peerNAT, weNAT bool) {
	srcs, dst := 0, findNotify(ps, ikev2.NAT_DETECTION_DESTINATION_IP)
	want := ikev2.NATDetectionHash(spii, spir, remote)
	peerNAT = true
	for _, p := range ps {
		if n, ok := p.(*ikev2.Notify); ok && n.Kind == ikev2.NAT_DETECTION_SOURCE_IP {
			srcs++
			if bytes.Equal(n.Data, want) {
				peerNAT = false
			}
		}
	}
	if srcs == 0 {
		peerNAT = false
	}
	weNAT = dst != nil && !bytes.Equal(dst.Data, ikev2.NATDetectionHash(spii, spir, local))
	return peerNAT, weNAT
}

// supportNotifies announce IKE fragmentation (RFC 7383) and the
// signature hashes we verify (RFC 7427).
func supportNotifies() []ikev2.Payload {
	return []ikev2.Payload{
		&ikev2.Notify{Kind: ikev2.IKEV2_FRAGMENTATION_SUPPORTED},
		ikev2.NewSignatureHashes(ikev2.HashSHA2_256, ikev2.HashIdentity),
	}
}
