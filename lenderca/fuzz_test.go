package lenderca

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"testing"
)

func csrPEM(t testing.TB, cn string, key any) []byte {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func TestCheckCSRRefusesOtherCurves(t *testing.T) {
	k384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, err := CheckCSR(csrPEM(t, "L1/s1", k384), Subject{"L1", "s1"})
	if err == nil || err.Error() != "csr_pem.key: ECDSA curve P-384, want P-256" {
		t.Fatalf("P-384 CSR: %v, want refusal naming csr_pem.key", err)
	}
}

func TestCheckCSRAcceptsEd25519(t *testing.T) {
	_, k, _ := ed25519.GenerateKey(rand.Reader)
	if _, err := CheckCSR(csrPEM(t, "L1/s1", k), Subject{"L1", "s1"}); err != nil {
		t.Fatalf("Ed25519 CSR refused: %v", err)
	}
}

func TestCheckCSRRefusesTamperedSignature(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p := csrPEM(t, "L1/s1", k)
	b, _ := pem.Decode(p)
	b.Bytes[len(b.Bytes)-3] ^= 0x55
	_, err := CheckCSR(pem.EncodeToMemory(b), Subject{"L1", "s1"})
	if err == nil {
		t.Fatal("CSR with a flipped signature byte accepted")
	}
}

func FuzzCheckCSR(f *testing.F) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	f.Add(csrPEM(f, "L1/s1", k))
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----\nMAA=\n-----END CERTIFICATE REQUEST-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		csr, err := CheckCSR(data, Subject{"L1", "s1"})
		if err == nil && csr.Subject.CommonName != "L1/s1" {
			t.Fatalf("accepted CN %q", csr.Subject.CommonName)
		}
	})
}
