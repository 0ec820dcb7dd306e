package lenderca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"ferry/api"
)

// A one-time certificate can never pass as the lender's serving
// certificate, even when its CSR asks for server use; the certificate
// Init makes for the agent listener does.
func TestOneTimeCertificateCannotServeAsTheLender(t *testing.T) {
	dir := t.TempDir()
	ca, err := Init(dir, []string{"127.0.0.1", "lender.example"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ekuServer, _ := asn1.Marshal([]asn1.ObjectIdentifier{{1, 3, 6, 1, 5, 5, 7, 3, 1}})
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "L1/s1"},
		ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 37}, Value: ekuServer}}}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := CheckCSR(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), Subject{"L1", "s1"})
	if err != nil {
		t.Fatal(err)
	}
	iss, err := ca.Sign(csr, Subject{"L1", "s1"}, time.Now(), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	oneTime, _ := x509.ParseCertificate(iss.DER)
	if !slices.Equal(oneTime.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) || len(oneTime.DNSNames)+len(oneTime.IPAddresses) > 0 {
		t.Errorf("one-time certificate: extended key usage %v, SANs %v %v; want clientAuth only and no names",
			oneTime.ExtKeyUsage, oneTime.DNSNames, oneTime.IPAddresses)
	}
	data, err := os.ReadFile(filepath.Join(dir, TLSCertFile))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(data)
	serving, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"127.0.0.1", "lender.example"} {
		if err := api.CheckLenderLeaf(oneTime, host); err == nil {
			t.Errorf("one-time certificate accepted as the lender at %s", host)
		}
		if err := api.CheckLenderLeaf(serving, host); err != nil {
			t.Errorf("the lender's serving certificate refused at %s: %v", host, err)
		}
	}
}
