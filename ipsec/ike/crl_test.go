package ike

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ferry/ipsec/authz"
	"ferry/ipsec/dataplane/dataplanetest"
	"ferry/pki"
)

// TestGatewayRefusesCertificateOnTheCRL: a server whose key is on the
// allow list gets in until its certificate is on the lender's CRL, then
// the handshake is refused.
func TestGatewayRefusesCertificateOnTheCRL(t *testing.T) {
	ca, err := pki.NewCA("lender CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	gk, gc, _ := ca.Issue(pki.Identity{CommonName: "gw"}, pki.ECDSAP256, time.Hour)
	ik, ic, _ := ca.Issue(pki.Identity{CommonName: "L1/s1"}, pki.ECDSAP256, time.Hour)
	sum := sha256.Sum256(ic.RawSubjectPublicKeyInfo)
	allow := authz.New(testLog(t, "authz"), nil)
	if err := allow.Add(authz.Entry{Pin: hex.EncodeToString(sum[:]), Lease: "L1"}); err != nil {
		t.Fatal(err)
	}
	lo := netip.MustParseAddr("127.0.0.1")
	fast := Backoff{Base: 100 * time.Millisecond, Max: 200 * time.Millisecond, Tries: 3}
	g500, g4500 := udp(t), udp(t)
	runDaemon(t, Config{Local: lo, Certs: []*x509.Certificate{gc}, Key: gk, CAs: []*x509.Certificate{ca.Cert}, Authorizer: allow,
		LocalSubnets: []netip.Prefix{netip.MustParsePrefix("10.37.2.0/24")}, Log: testLog(t, "gw"), Backoff: fast,
		DataPlane: dataplanetest.NewNull()}, g500, g4500)
	connect := func() error {
		ini := runDaemon(t, Config{Local: lo, Certs: []*x509.Certificate{ic}, Key: ik, CAs: []*x509.Certificate{ca.Cert},
			Port: port(g500), NATPort: port(g4500), Log: testLog(t, "init"), Backoff: fast,
			DataPlane: dataplanetest.NewNull()}, udp(t), udp(t))
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		return ini.Connect(ctx, Target{Gateway: lo})
	}
	if err := connect(); err != nil {
		t.Fatalf("listed key, no CRL: %v", err)
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(2), ThisUpdate: time.Now(),
		NextUpdate:                time.Now().Add(time.Hour),
		RevokedCertificateEntries: []x509.RevocationListEntry{{SerialNumber: ic.SerialNumber, RevocationTime: time.Now()}}}, ca.Cert, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "lender.crl")
	os.WriteFile(path, der, 0o644)
	if err := allow.LoadCRL(t.Context(), path, ca.Cert); err != nil {
		t.Fatal(err)
	}
	if err := connect(); err == nil || !strings.Contains(err.Error(), "AUTHENTICATION_FAILED") {
		t.Fatalf("listed key, certificate on the CRL: %v, want AUTHENTICATION_FAILED", err)
	}
}
