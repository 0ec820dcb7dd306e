package ike

import (
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"ferry/ipsec/ikev2"
	"ferry/pki"
)

// Authentication by certificate, for IKE_AUTH in both roles (RFC 7296
// sections 2.15 and 3.5-3.8): our ID, CERT and CERTREQ payloads and AUTH
// signature, and the check of the peer's.

// ownID is our identity: the subject of our certificate.
func (d *Daemon) ownID(responder bool) *ikev2.ID {
	return &ikev2.ID{Responder: responder, IDType: ikev2.IDDerAsn1DN, Data: d.ownCerts()[0].RawSubject}
}

// certPayloads are our certificate and its chain.
func (d *Daemon) certPayloads() []ikev2.Payload {
	var out []ikev2.Payload
	for _, c := range d.ownCerts() {
		out = append(out, &ikev2.Cert{Encoding: ikev2.CertX509Signature, Data: c.Raw})
	}
	return out
}

// certReq names the trusted CAs: SHA-1 of each one's SubjectPublicKeyInfo.
func (d *Daemon) certReq() *ikev2.CertReq {
	var data []byte
	for _, ca := range d.cfg.CAs {
		h := sha1.Sum(ca.RawSubjectPublicKeyInfo)
		data = append(data, h[:]...)
	}
	return &ikev2.CertReq{Encoding: ikev2.CertX509Signature, Data: data}
}

// sign makes our AUTH payload over the octets section 2.15 names.
func (d *Daemon) sign(sa *ikeSA, firstMsg, peerNonce, skp []byte, id *ikev2.ID) (*ikev2.Auth, error) {
	return ikev2.SignAuth(d.cfg.Key, ikev2.SignedOctets(sa.suite.PRF, firstMsg, peerNonce, skp, id), rand.Reader)
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

// idMatches reports whether id names the certificate p.
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
