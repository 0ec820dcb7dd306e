package ike

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"time"

	"ferry/ipsec/dataplane"
	"ferry/ipsec/ikev2"
	"ferry/pki"
)

var anyV4 = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}

func (d *Daemon) ownID(responder bool) *ikev2.ID {
	return &ikev2.ID{Responder: responder, IDType: ikev2.IDDerAsn1DN, Data: d.cfg.Certs[0].RawSubject}
}

func (d *Daemon) certPayloads() []ikev2.Payload {
	var out []ikev2.Payload
	for _, c := range d.cfg.Certs {
		out = append(out, &ikev2.Cert{Encoding: ikev2.CertX509Signature, Data: c.Raw})
	}
	return out
}

func (d *Daemon) sign(sa *ikeSA, firstMsg, peerNonce, skp []byte, id *ikev2.ID) (*ikev2.Auth, error) {
	return ikev2.SignAuth(d.cfg.Key, ikev2.SignedOctets(sa.suite.PRF, firstMsg, peerNonce, skp, id), rand.Reader)
}

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
	ck, err := cs.ChildKeys(sa.suite.PRF, sa.keys.SKd, nil, sa.ni, sa.nr)
	if err != nil {
		return err
	}
	c := d.childConfig(sa, sa.childSPI, binary.BigEndian.Uint32(sp.Proposals[0].SPI), ck.EncrR, ck.EncrI, cs)
	c.TSLocal, c.TSRemote = Narrow(tsi.Selectors, anyV4), Narrow(tsr.Selectors, anyV4)
	if sa.vip.IsValid() {
		c.VirtualIP = netip.PrefixFrom(sa.vip, 32)
	}
	_, err = d.install(sa, c)
	return err
}

func (d *Daemon) childConfig(sa *ikeSA, in, out uint32, inKey, outKey []byte, cs *ikev2.Suite) dataplane.ChildSA {
	return dataplane.ChildSA{InSPI: in, OutSPI: out, Local: d.localAddr(sa.natT), Remote: sa.remote, Encap: sa.natT,
		Alg: dataplane.AlgAES256GCM16, InKey: inKey, OutKey: outKey, ESN: cs.ESN, Lifetime: d.childLifetime()}
}

// verifyPeer checks the CERT payloads and that the ID names the
// certificate's subject or one of its alternative names.
func (d *Daemon) verifyPeer(ps []ikev2.Payload, id *ikev2.ID) (*pki.Peer, error) {
	var chain []*x509.Certificate
	for _, p := range ps {
		c, ok := p.(*ikev2.Cert)
		if !ok {
			continue
		}
		if c.Encoding != ikev2.CertX509Signature || len(chain) == pki.MaxChainCert {
			return nil, fmt.Errorf("CERT payload %d: encoding %d or too many", len(chain)+1, c.Encoding)
		}
		cert, err := x509.ParseCertificate(c.Data)
		if err != nil {
			return nil, fmt.Errorf("CERT payload %d: %w", len(chain)+1, err)
		}
		chain = append(chain, cert)
	}
	peer, err := d.cfg.Verifier.Verify(chain)
	if err != nil {
		return nil, err
	}
	if !idMatches(id, peer) {
		return nil, fmt.Errorf("ID (type %d) %q does not name certificate %q", id.IDType, id.Data, peer.Subject)
	}
	return peer, nil
}

func idMatches(id *ikev2.ID, p *pki.Peer) bool {
	switch id.IDType {
	case ikev2.IDDerAsn1DN:
		return bytes.Equal(id.Data, p.Cert.RawSubject)
	case ikev2.IDFQDN:
		return slices.Contains(p.DNSNames, string(id.Data))
	case ikev2.IDRFC822:
		return slices.Contains(p.Emails, string(id.Data))
	case ikev2.IDIPv4Addr, ikev2.IDIPv6Addr:
		a, ok := netip.AddrFromSlice(id.Data)
		return ok && slices.ContainsFunc(p.IPs, func(ip net.IP) bool { b, _ := netip.AddrFromSlice(ip); return b.Unmap() == a.Unmap() })
	}
	return false
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

// jitter is a random duration between lo and hi percent of d.
func jitter(d time.Duration, lo, hi int64) time.Duration {
	span := int64(d) * (hi - lo) / 100
	if span <= 0 {
		return time.Duration(int64(d) * lo / 100)
	}
	return time.Duration(int64(d)*lo/100 + mrand.Int64N(span))
}
