package ike

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"ferry/ipsec/ikev2"
)

// Target is what an initiator asks for.
type Target struct {
	Gateway       netip.Addr     // the responder's address
	RemoteSubnets []netip.Prefix // TSr wanted; default everything
	VirtualIP     bool           // ask for an inner address (CP request)
}

// Connect opens an IKE SA and its first CHILD_SA to t.Gateway and waits
// until both are up or failed.
func (d *Daemon) Connect(ctx context.Context, t Target) error {
	if len(t.RemoteSubnets) == 0 {
		t.RemoteSubnets = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}
	}
	result := make(chan error, 1)
	d.mu.Lock()
	now := time.Now()
	sa := &ikeSA{initiator: true, origin: true, spii: d.newSPI(), st: stInitSent, remote: netip.AddrPortFrom(t.Gateway, d.cfg.Port),
		ni: nonce(), created: now, lastRecv: now, result: result, target: t}
	d.sas[sa.spii] = sa
	err := d.sendInit(sa, d.cfg.IKEPolicy.DH[0])
	d.mu.Unlock()
	if err != nil {
		return err
	}
	select {
	case err := <-result:
		return err
	case <-ctx.Done():
		d.mu.Lock()
		d.removeSA(sa, "connect cancelled")
		d.mu.Unlock()
		return ctx.Err()
	}
}

// proposal turns a policy into the one proposal an initiator sends.
func proposal(p ikev2.Policy, spi []byte, withDH bool) ikev2.Proposal {
	prop := ikev2.Proposal{Number: 1, Protocol: p.Protocol, SPI: spi}
	prop.Transforms = append(prop.Transforms, p.Encr...)
	for _, id := range p.PRF {
		prop.Transforms = append(prop.Transforms, ikev2.Transform{Type: ikev2.TransformPRF, ID: id})
	}
	for _, id := range p.Integ {
		prop.Transforms = append(prop.Transforms, ikev2.Transform{Type: ikev2.TransformINTEG, ID: id})
	}
	if withDH {
		for _, id := range p.DH {
			prop.Transforms = append(prop.Transforms, ikev2.Transform{Type: ikev2.TransformDH, ID: id})
		}
	}
	for _, id := range p.ESN {
		prop.Transforms = append(prop.Transforms, ikev2.Transform{Type: ikev2.TransformESN, ID: id})
	}
	return prop
}

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

func (d *Daemon) fail(sa *ikeSA, reason string) {
	d.log.Info("ike: connect failed", "gateway", sa.remote, "reason", reason)
	if sa.result != nil {
		sa.result <- errors.New("ike: " + reason)
		sa.result = nil
	}
	d.removeSA(sa, reason)
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
