package gatewayctl

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/strongswan/govici/vici"
)

func TestConnWithoutKeyNeedsTheServerIdentity(t *testing.T) {
	c := testConn(t, "L1", "s1")
	c.PubKey, c.RemoteID = nil, ""
	if err := c.validate(); err == nil || !strings.Contains(err.Error(), "any certificate of the lender CA") {
		t.Fatalf("conn with neither key nor identity: %v, want a refusal", err)
	}
}

// leaseServerID is the identity of the certificate the lender signs for
// server of lease: the subject CN "LEASE/SERVER" (lenderca).
func leaseServerID(t *testing.T, lease, server string) string {
	raw, err := asn1.Marshal(pkix.Name{CommonName: lease + "/" + server}.ToRDNSequence())
	must(t, err)
	return DNID(raw)
}

func TestSwanBindsLeaseServerIdentityAndLoadsPool(t *testing.T) {
	_, socket := startCharon(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := DialSwan(ctx, socket, nil)
	must(t, err)
	defer s.Close()
	must(t, s.LoadPool(ctx, "ferry-borrower", netip.MustParsePrefix("10.44.8.0/24")))
	c := testConn(t, "L1", "s5254")
	c.PubKey = nil
	c.RemoteID = leaseServerID(t, "L1", "s5254")
	must(t, s.Load(ctx, c))
	list, err := exec.Command("swanctl", "--list-conns", "--uri", "unix://"+socket).CombinedOutput()
	must(t, err)
	if !strings.Contains(string(list), "id: CN=L1/s5254") {
		t.Errorf("charon does not bind the conn to the subject CN=L1/s5254:\n%s", list)
	}
	pools, err := exec.Command("swanctl", "--list-pools", "--uri", "unix://"+socket).CombinedOutput()
	if err != nil || !strings.Contains(string(pools), "ferry-borrower") || !strings.Contains(string(pools), "10.44.8.") {
		t.Errorf("swanctl --list-pools: %v\n%s", err, pools)
	}
	sas, err := s.SAs(ctx)
	if err != nil || len(sas) != 0 {
		t.Errorf("SAs of a charon nobody connected to: %v, %v", sas, err)
	}
}

func TestListSAReadsVirtualIPsAndRefusesBadOnes(t *testing.T) {
	sec := vici.NewMessage()
	sec.Set("state", "ESTABLISHED")
	sec.Set("remote-id", "CN=L1/s1")
	sec.Set("remote-vips", []string{"10.44.8.1"})
	m := vici.NewMessage()
	m.Set("ferry-L1-s1", sec)
	sas, err := parseListSA(m)
	if err != nil || len(sas) != 1 || sas[0].Name != "ferry-L1-s1" || sas[0].RemoteVIPs[0] != netip.MustParseAddr("10.44.8.1") {
		t.Fatalf("parseListSA: %+v, %v", sas, err)
	}
	sec.Set("remote-vips", []string{"10.44.8.999"})
	if _, err := parseListSA(m); err == nil || !strings.Contains(err.Error(), "remote-vips") {
		t.Fatalf("bad virtual IP: %v, want an error naming remote-vips", err)
	}
}

func TestLoadCRLIntoCharon(t *testing.T) {
	_, socket := startCharon(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := DialSwan(ctx, socket, nil)
	must(t, err)
	defer s.Close()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ferry test lender CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	caDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &caKey.PublicKey, caKey)
	must(t, err)
	ca, err := x509.ParseCertificate(caDER)
	must(t, err)
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(7), ThisUpdate: time.Now(),
		NextUpdate:                time.Now().Add(time.Hour),
		RevokedCertificateEntries: []x509.RevocationListEntry{{SerialNumber: big.NewInt(0x5eed), RevocationTime: time.Now()}}},
		ca, caKey)
	must(t, err)
	must(t, s.LoadCRL(ctx, der))
	out, err := exec.Command("swanctl", "--list-certs", "--type", "x509crl", "--uri", "unix://"+socket).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "5e:ed") {
		t.Fatalf("charon does not hold the CRL listing serial 5e:ed: %v\n%s", err, out)
	}
	if err := s.LoadCRL(ctx, []byte("not a CRL")); err == nil {
		t.Error("charon took garbage as a CRL")
	}
}
