package authz

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"ferry/pki"
)

// crlOf is a CRL of ca listing the given certificates.
func crlOf(t *testing.T, ca *pki.CA, certs ...*x509.Certificate) []byte {
	t.Helper()
	var entries []x509.RevocationListEntry
	for _, c := range certs {
		entries = append(entries, x509.RevocationListEntry{SerialNumber: c.SerialNumber, RevocationTime: time.Now()})
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(time.Now().UnixNano()),
		ThisUpdate: time.Now(), NextUpdate: time.Now().Add(time.Hour), RevokedCertificateEntries: entries}, ca.Cert, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func pinOf(c *x509.Certificate) string {
	sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return hex.EncodeToString(sum[:])
}

func TestCRLRefusesRevokedCertificateAndTearsDownItsPeer(t *testing.T) {
	ca, err := pki.NewCA("ferry lender CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	_, leaf, err := ca.Issue(pki.Identity{CommonName: "L1/s1"}, pki.ECDSAP256, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	_, other, _ := ca.Issue(pki.Identity{CommonName: "L1/s2"}, pki.ECDSAP256, time.Hour)
	r := &revokes{}
	l := New(slog.New(slog.DiscardHandler), r)
	for _, c := range []*x509.Certificate{leaf, other} {
		if err := l.Add(Entry{Pin: pinOf(c), Lease: "L1"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.AllowCert(leaf); err != nil {
		t.Fatalf("listed key before any CRL: %v", err)
	}
	path := filepath.Join(t.TempDir(), "lender.crl")
	os.WriteFile(path, crlOf(t, ca, leaf), 0o644)
	if err := l.LoadCRL(context.Background(), path, ca.Cert); err != nil {
		t.Fatal(err)
	}
	if got := r.got(); len(got) != 1 || got[0] != pinOf(leaf) {
		t.Errorf("revoked %v when the CRL came, want the connected peer's pin %s", got, pinOf(leaf))
	}
	if _, err := l.AllowCert(leaf); !errors.Is(err, ErrRevoked) {
		t.Fatalf("AllowCert of a revoked certificate whose key is still listed: %v, want ErrRevoked", err)
	}
	if _, err := l.AllowCert(other); err != nil {
		t.Fatalf("a certificate the CRL does not list: %v", err)
	}

	// A CRL signed by another CA is refused and the loaded one stays.
	forger, _ := pki.NewCA("ferry lender CA", time.Hour)
	os.WriteFile(path, crlOf(t, forger), 0o644)
	if err := l.LoadCRL(context.Background(), path, ca.Cert); err == nil {
		t.Fatal("a CRL signed by another CA was loaded")
	}
	if _, err := l.AllowCert(leaf); !errors.Is(err, ErrRevoked) {
		t.Fatalf("after a refused CRL the revoked certificate: %v, want ErrRevoked", err)
	}
}
