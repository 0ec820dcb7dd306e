package ike

import (
	"crypto/x509"
	"net/netip"
	"strings"
	"testing"
	"time"

	"ferry/pki"
)

// Reconfigure takes a whole new key pair, CA, subnets, DNS and timers,
// or, when the certificate is not the key's, nothing at all.
func TestReconfigureAllOrNothing(t *testing.T) {
	ca, err := pki.NewCA("reconfigure CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	key, cert, _ := ca.Issue(pki.Identity{CommonName: "gw"}, pki.ECDSAP256, time.Hour)
	key2, cert2, _ := ca.Issue(pki.Identity{CommonName: "gw2"}, pki.ECDSAP256, time.Hour)
	ca2, _ := pki.NewCA("second CA", time.Hour)
	d := newDaemon(Config{Key: key, Certs: []*x509.Certificate{cert}, CAs: []*x509.Certificate{ca.Cert}, DPD: 10 * time.Second}, nil, nil)
	live := Live{Certs: []*x509.Certificate{cert2}, Key: key, CAs: []*x509.Certificate{ca2.Cert},
		LocalSubnets: []netip.Prefix{netip.MustParsePrefix("10.9.0.0/24")}, DNS: []netip.Addr{netip.MustParseAddr("10.9.0.53")},
		DPD: 5 * time.Second, IKELifetime: time.Hour, ChildLifetime: 30 * time.Minute, RekeyMargin: time.Minute}
	if err := d.Reconfigure(live); err == nil || !strings.Contains(err.Error(), "not for the key") {
		t.Fatalf("certificate of another key: %v, want a refusal", err)
	}
	if d.cfg.DPD != 10*time.Second || d.Certs()[0] != cert || d.cfg.CAs[0] != ca.Cert {
		t.Fatal("a refused Reconfigure changed the daemon")
	}
	live.Key = key2
	if err := d.Reconfigure(live); err != nil {
		t.Fatal(err)
	}
	if d.cfg.DPD != 5*time.Second || d.Certs()[0] != cert2 || d.cfg.Key != key2 || d.cfg.CAs[0] != ca2.Cert ||
		d.cfg.LocalSubnets[0].String() != "10.9.0.0/24" || d.cfg.DNS[0].String() != "10.9.0.53" || d.cfg.ChildLifetime != 30*time.Minute {
		t.Fatalf("after Reconfigure: %+v", d.cfg)
	}
	// Peers of the new CA verify, those of the old one no longer do.
	_, peer, _ := ca2.Issue(pki.Identity{CommonName: "lent"}, pki.ECDSAP256, time.Hour)
	if _, err := d.cfg.Verifier.Verify([]*x509.Certificate{peer}); err != nil {
		t.Fatalf("a peer of the new CA: %v", err)
	}
	_, old, _ := ca.Issue(pki.Identity{CommonName: "lent"}, pki.ECDSAP256, time.Hour)
	if _, err := d.cfg.Verifier.Verify([]*x509.Certificate{old}); err == nil {
		t.Fatal("a peer of the replaced CA still verifies")
	}
}
