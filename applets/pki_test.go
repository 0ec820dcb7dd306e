package applets

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"ferry/pki"
)

// writtenPair reads a certificate and key pki wrote, wanting the key 0600
// and the certificate's own.
func writtenPair(t *testing.T, certFile, keyFile string) *x509.Certificate {
	t.Helper()
	certs, err := pki.LoadCertsFile(certFile)
	if err != nil || len(certs) != 1 {
		t.Fatalf("%s: %d certificates, %v", certFile, len(certs), err)
	}
	key, err := pki.LoadKeyFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(key.Public(), certs[0].PublicKey) {
		t.Errorf("%s is not the key of %s", keyFile, certFile)
	}
	for f, want := range map[string]os.FileMode{certFile: 0o644, keyFile: 0o600} {
		if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v (%v), want %v", f, fi.Mode().Perm(), err, want)
		}
	}
	return certs[0]
}

// pki ca and pki issue write a certificate and its key, both or neither,
// and print what the certificate is (pki show's description).
func TestPKICAAndIssueWriteThePairAndDescribeIt(t *testing.T) {
	dir := t.TempDir()
	ca, caKey := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca.key")
	code, out, errb := run("ferry", "pki", "ca", "--name", "acme", "--cert", ca, "--key", caKey)
	if code != 0 {
		t.Fatalf("pki ca: exit %d %s", code, errb)
	}
	caCert := writtenPair(t, ca, caKey)
	if want := pki.Describe(caCert); out != want {
		t.Errorf("pki ca printed\n%s\nwant\n%s", out, want)
	}
	before, _ := os.ReadFile(caKey)
	if code, out, _ := run("ferry", "pki", "ca", "--name", "acme", "--cert", filepath.Join(dir, "new.pem"), "--key", caKey); code == 0 || out != "" {
		t.Errorf("pki ca over an existing key without --force: exit %d, printed %q", code, out)
	}
	if after, _ := os.ReadFile(caKey); string(after) != string(before) {
		t.Error("pki ca replaced a key without --force")
	}
	if _, err := os.Stat(filepath.Join(dir, "new.pem")); err == nil {
		t.Error("pki ca wrote the certificate although it could not write the key")
	}

	cert, key := filepath.Join(dir, "m2m.pem"), filepath.Join(dir, "m2m.key")
	code, out, errb = run("ferry", "pki", "issue", "--ca-cert", ca, "--ca-key", caKey, "--cn", "acme-m2m", "--usage", "server",
		"--host", "127.0.0.1,m2m.example", "--cert", cert, "--key", key)
	if code != 0 {
		t.Fatalf("pki issue: exit %d %s", code, errb)
	}
	c := writtenPair(t, cert, key)
	if want := pki.Describe(c); out != want {
		t.Errorf("pki issue printed\n%s\nwant\n%s", out, want)
	}
	if err := c.CheckSignatureFrom(caCert); err != nil || c.Subject.CommonName != "acme-m2m" || len(c.IPAddresses) != 1 || len(c.DNSNames) != 1 {
		t.Errorf("issued %q %v %v, signature %v", c.Subject.CommonName, c.IPAddresses, c.DNSNames, err)
	}
}
