package lenderca

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// ShortenTLS re-signs dir's tls.pem to end at notAfter: the agent
// listener's certificate of a lender that has run for almost two years.
func ShortenTLS(t *testing.T, ca *CA, dir string, notAfter time.Time) {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, TLSCertFile), filepath.Join(dir, TLSKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := tlsTemplate(pair.Leaf.Subject, pair.Leaf.IPAddresses, pair.Leaf.DNSNames, time.Now())
	tmpl.NotAfter = notAfter
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pair.Leaf.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, TLSCertFile), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

// A certificate a minute from its end is renewed for the same key and
// names, two years on, still chaining to the CA agents pin; only tls.pem
// changes.
func TestRenewTLSKeepsKeyAndNames(t *testing.T) {
	dir := t.TempDir()
	ca, err := Init(dir, []string{"10.0.0.1", "lender.example"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ShortenTLS(t, ca, dir, time.Now().Add(time.Minute))
	keyBefore, _ := os.ReadFile(filepath.Join(dir, TLSKeyFile))
	now := time.Now()
	got, err := ca.RenewTLS(dir, now)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, TLSCertFile), filepath.Join(dir, TLSKeyFile))
	if err != nil {
		t.Fatalf("the renewed tls.pem and the kept tls.key: %v", err)
	}
	if !pair.Leaf.Equal(got) {
		t.Fatal("RenewTLS returned another certificate than it wrote")
	}
	if keyAfter, _ := os.ReadFile(filepath.Join(dir, TLSKeyFile)); string(keyAfter) != string(keyBefore) {
		t.Fatal("tls.key changed")
	}
	if d := got.NotAfter.Sub(now); d < 729*24*time.Hour {
		t.Fatalf("renewed for %v, want two years", d)
	}
	if len(got.IPAddresses) != 1 || got.IPAddresses[0].String() != "10.0.0.1" || len(got.DNSNames) != 1 || got.DNSNames[0] != "lender.example" {
		t.Fatalf("names %v %v", got.IPAddresses, got.DNSNames)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	if _, err := got.Verify(x509.VerifyOptions{Roots: roots, DNSName: "lender.example"}); err != nil {
		t.Fatalf("the renewed certificate against the pinned CA: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Name()[0] == '.' {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}
