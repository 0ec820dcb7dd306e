package ike

import (
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"ferry/ipsec/dataplane/dataplanetest"
	"ferry/ipsec/ikev2"
	"ferry/pki"
)

// fuzzResponder is a gateway on ephemeral loopback ports with a data
// plane that moves nothing.
func fuzzResponder(f testing.TB) *Daemon {
	ca, err := pki.NewCA("fuzz CA", time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	key, cert, err := ca.Issue(pki.Identity{CommonName: "gw"}, pki.ECDSAP256, time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	lo := netip.MustParseAddr("127.0.0.1")
	pool, _ := NewPool(netip.MustParsePrefix("10.33.250.0/24"))
	cfg := Config{Local: lo, Certs: []*x509.Certificate{cert}, Key: key, CAs: []*x509.Certificate{ca.Cert}, Pool: pool,
		LocalSubnets: []netip.Prefix{netip.MustParsePrefix("10.33.2.0/24")}, DataPlane: dataplanetest.NewNull()}
	if err := cfg.setDefaults(); err != nil {
		f.Fatal(err)
	}
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		f.Skip(err)
	}
	natc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		f.Skip(err)
	}
	f.Cleanup(func() { conn.Close(); natc.Close() })
	return newDaemon(cfg, conn, natc)
}

// seedInit builds a valid IKE_SA_INIT request, the seed the fuzzer
// mutates.
func seedInit(f testing.TB) []byte {
	dh, err := ikev2.NewDH(ikev2.DH_ECP256, rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	m := ikev2.Message{Header: ikev2.Header{SPIi: 0x1122334455667788, Exchange: ikev2.IKE_SA_INIT, Flags: ikev2.FlagInitiator},
		Payloads: append([]ikev2.Payload{&ikev2.SA{Proposals: []ikev2.Proposal{proposal(ikev2.DefaultIKEPolicy(), nil, true)}}, dh.KE(), &ikev2.Nonce{Data: make([]byte, 32)}}, supportNotifies()...)}
	b, err := m.Encode()
	if err != nil {
		f.Fatal(err)
	}
	return b
}

// FuzzResponderReceive feeds arbitrary datagrams to a gateway: it must
// never panic, and half-open state must stay within its bound.
func FuzzResponderReceive(f *testing.F) {
	d := fuzzResponder(f)
	f.Add(seedInit(f), false)
	f.Add([]byte{0, 0, 0, 0, 1}, true)
	from := netip.MustParseAddrPort("127.0.0.1:9")
	f.Fuzz(func(t *testing.T, b []byte, nat bool) {
		d.receive(b, from, nat)
		d.mu.Lock()
		n := len(d.halfOpen)
		err := d.halfOpenExact()
		d.mu.Unlock()
		if n > d.cfg.HalfOpenMax {
			t.Fatalf("%d half-open SAs, limit %d", n, d.cfg.HalfOpenMax)
		}
		if err != nil {
			t.Fatal(err)
		}
	})
}

// halfOpenExact checks that the half-open table holds exactly the SAs in
// state half-open, each under the key it was made with (d.mu held).
func (d *Daemon) halfOpenExact() error {
	n := 0
	for _, sa := range d.sas {
		if sa.st != stHalfOpen {
			continue
		}
		n++
		if d.halfOpen[sa.openKey] != sa {
			return fmt.Errorf("half-open SA %016x is not in the table under its key", sa.spir)
		}
	}
	if n != len(d.halfOpen) {
		return fmt.Errorf("%d entries in the half-open table for %d half-open SAs", len(d.halfOpen), n)
	}
	return nil
}
