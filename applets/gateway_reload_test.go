package applets

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

	"ferry/ipsec/authz"
	"ferry/pki"
)

// A reload that names a new CA and its CRL (or a new CRL file) switches
// the gateway's verifier at once (ike.Daemon.Reconfigure): the new CRL
// must be in force when the CRL watch's start returns, not whenever its
// goroutine first reads the file, or a certificate it revokes whose key
// is still listed passes IKE_AUTH in between.
func TestCRLWatchStartLoadsTheCRLBeforeReturning(t *testing.T) {
	oldCA, err := pki.NewCA("lender CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	newCA, err := pki.NewCA("lender CA, renewed", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	_, revoked, err := newCA.Issue(pki.Identity{CommonName: "L1/s1"}, pki.ECDSAP256, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	oldPath, newPath := filepath.Join(dir, "old.crl"), filepath.Join(dir, "new.crl")
	os.WriteFile(oldPath, crlListing(t, oldCA), 0o644)
	os.WriteFile(newPath, crlListing(t, newCA, revoked), 0o644)

	allow := authz.New(slog.New(slog.DiscardHandler), nil)
	sum := sha256.Sum256(revoked.RawSubjectPublicKeyInfo)
	if err := allow.Add(authz.Entry{Pin: hex.EncodeToString(sum[:]), Lease: "L1"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &crlWatch{allow: allow}
	w.start(ctx, oldPath, oldCA.Cert)
	defer w.stop()
	w.start(ctx, newPath, newCA.Cert) // what reload does
	if _, err := allow.AllowCert(revoked); !errors.Is(err, authz.ErrRevoked) {
		t.Fatalf("right after the reload's CRL watch started: AllowCert of a certificate the new CRL lists = %v, want ErrRevoked", err)
	}
}

// crlListing is a CRL of ca listing certs.
func crlListing(t *testing.T, ca *pki.CA, certs ...*x509.Certificate) []byte {
	t.Helper()
	var entries []x509.RevocationListEntry
	for _, c := range certs {
		entries = append(entries, x509.RevocationListEntry{SerialNumber: c.SerialNumber, RevocationTime: time.Now()})
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(1),
		ThisUpdate: time.Now(), NextUpdate: time.Now().Add(time.Hour), RevokedCertificateEntries: entries}, ca.Cert, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}
