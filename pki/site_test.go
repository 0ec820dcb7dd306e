package pki

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A site's own CA is taken only when it is a CA and the key is its; the
// certificates it issues check out only with their own key, and one that
// ends soon is a warning.
func TestSiteCertificatesAndTheirChecks(t *testing.T) {
	dir := t.TempDir()
	ca, _ := NewOrgCA("acme", 24*time.Hour)
	other, _ := NewOrgCA("initech", 24*time.Hour)
	kp, _ := MarshalKeyPEM(ca.Key)
	otherKey, _ := MarshalKeyPEM(other.Key)
	if _, err := LoadCA(ca.CertPEM(), kp); err != nil {
		t.Fatalf("own CA refused: %v", err)
	}
	if _, err := LoadCA(ca.CertPEM(), otherKey); err == nil || !strings.Contains(err.Error(), "not the key") {
		t.Fatalf("CA with another's key: %v", err)
	}
	key, leaf, err := ca.IssueSite("acme-m2m", nil, UsageClient, 365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !leaf.NotAfter.Equal(ca.Cert.NotAfter) {
		t.Errorf("leaf ends %v, after its CA's %v", leaf.NotAfter, ca.Cert.NotAfter)
	}
	lk, _ := MarshalKeyPEM(key)
	if _, err := LoadCA(CertPEM(leaf), lk); err == nil || !strings.Contains(err.Error(), "not a CA") {
		t.Fatalf("a leaf as a CA: %v", err)
	}
	if _, _, err := ca.IssueSite("srv", nil, UsageServer, time.Hour); err == nil {
		t.Fatal("a server certificate with no name was issued")
	}
	cert, keyFile, wrong := filepath.Join(dir, "c.pem"), filepath.Join(dir, "c.key"), filepath.Join(dir, "w.key")
	os.WriteFile(cert, CertPEM(leaf), 0o644)
	os.WriteFile(keyFile, lk, 0o600)
	os.WriteFile(wrong, otherKey, 0o644)
	_, warn, err := CheckPair(cert, keyFile, UsageClient, ca.Pool(), time.Now())
	if err != nil || len(warn) != 1 || !strings.Contains(warn[0], "expires on") {
		t.Fatalf("good pair ending within a day: %v %q", err, warn)
	}
	if _, _, err := CheckPair(cert, keyFile, UsageServer, ca.Pool(), time.Now()); err == nil {
		t.Fatal("a client certificate passed as a server's")
	}
	if _, _, err := CheckPair(cert, keyFile, UsageClient, other.Pool(), time.Now()); err == nil {
		t.Fatal("a certificate passed against another CA")
	}
	if _, _, err := CheckPair(cert, wrong, UsageClient, nil, time.Now()); err == nil || !strings.Contains(err.Error(), "is not the key of") {
		t.Fatalf("mismatched key: %v", err)
	}
	if _, _, err := CheckPair(cert, keyFile, UsageClient, nil, time.Now().Add(48*time.Hour)); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired: %v", err)
	}
}
