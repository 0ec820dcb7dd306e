package ike

import (
	"crypto/rand"
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"ferry/ipsec/ikev2"
	"ferry/pki"
)

// A renewed certificate replaces ours for the next IKE_AUTH; one for
// another key is refused (our AUTH is signed with our key).
func TestSetCertsTakesOnlyOurKey(t *testing.T) {
	ca, err := pki.NewCA("set-certs CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	key, old, err := ca.Issue(pki.Identity{CommonName: "L1/s1"}, pki.ECDSAP256, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	_, other, err := ca.Issue(pki.Identity{CommonName: "L1/s1"}, pki.ECDSAP256, 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: old.Subject}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	renewed, err := ca.Sign(csr, time.Now(), time.Now().Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	d := newDaemon(Config{Key: key, Certs: []*x509.Certificate{old}}, nil, nil)
	if err := d.SetCerts([]*x509.Certificate{other}); err == nil || !strings.Contains(err.Error(), "another key") {
		t.Fatalf("SetCerts(another key's certificate) = %v, want a refusal", err)
	}
	if err := d.SetCerts([]*x509.Certificate{renewed}); err != nil {
		t.Fatal(err)
	}
	p := d.certPayloads()
	if len(p) != 1 || string(p[0].(*ikev2.Cert).Data) != string(renewed.Raw) || string(d.ownID(false).Data) != string(renewed.RawSubject) {
		t.Fatalf("after SetCerts: %d CERT payloads, not the renewed certificate", len(p))
	}
}
