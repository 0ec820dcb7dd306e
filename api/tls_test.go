package api

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"
)

// leafFrom signs tmpl with a fresh CA and returns the chain as a server
// sends it, leaf first, and the CA's fingerprint.
func leafFrom(t *testing.T, tmpl *x509.Certificate) ([][]byte, string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test lender CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl.SerialNumber = big.NewInt(2)
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	return [][]byte{der, caDER}, Fingerprint(caDER)
}

// Each mark of the lender's serving certificate is checked on its own: a
// leaf the pinned CA signed passes only with all three.
func TestPinnedTLSAcceptsOnlyTheLendersServingCertificate(t *testing.T) {
	lease := &url.URL{Scheme: "ferry", Opaque: "lease/L1/server/s1"}
	ip := []net.IP{net.ParseIP("10.0.0.1")}
	server := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	for _, c := range []struct {
		name string
		tmpl x509.Certificate
		host string
		want string // "" = accepted
	}{
		{"lender by IP", x509.Certificate{ExtKeyUsage: server, IPAddresses: ip}, "10.0.0.1", ""},
		{"lender by name", x509.Certificate{ExtKeyUsage: server, DNSNames: []string{"lender.example"}}, "lender.example", ""},
		{"one-time as signed", x509.Certificate{ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, URIs: []*url.URL{lease}}, "10.0.0.1", "one-time certificate"},
		{"one-time with every other mark", x509.Certificate{ExtKeyUsage: server, IPAddresses: ip, URIs: []*url.URL{lease}}, "10.0.0.1", "one-time certificate"},
		{"client only", x509.Certificate{ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, IPAddresses: ip}, "10.0.0.1", "no serverAuth"},
		{"no extended key usage", x509.Certificate{IPAddresses: ip}, "10.0.0.1", "no serverAuth"},
		{"another host", x509.Certificate{ExtKeyUsage: server, IPAddresses: ip}, "10.0.0.2", "not the lender's"},
		{"no SAN", x509.Certificate{ExtKeyUsage: server, Subject: pkix.Name{CommonName: "10.0.0.1"}}, "10.0.0.1", "not the lender's"},
		{"no host to check", x509.Certificate{ExtKeyUsage: server, IPAddresses: ip}, "", "no lender host"},
	} {
		t.Run(c.name, func(t *testing.T) {
			chain, pin := leafFrom(t, &c.tmpl)
			err := verifyPinned(chain, pin, c.host)
			if c.want == "" && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
				t.Fatalf("err = %v, want one saying %q", err, c.want)
			}
		})
	}
}
