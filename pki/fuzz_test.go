package pki

import "testing"

func FuzzParseCertsPEM(f *testing.F) {
	ca, err := NewCA("fuzz CA", 3600e9)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(ca.CertPEM())
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		certs, err := ParseCertsPEM(data)
		if err == nil && len(certs) == 0 {
			t.Fatal("no error and no certificate")
		}
	})
}

func FuzzParseCSRPEM(f *testing.F) {
	key, _ := GenerateKey(ECDSAP256)
	p, _ := CreateCSR(key, Identity{CommonName: "seed"})
	f.Add(p)
	f.Fuzz(func(t *testing.T, data []byte) {
		csr, err := ParseCSRPEM(data)
		if err == nil && csr == nil {
			t.Fatal("no error and no CSR")
		}
	})
}

func FuzzParseKeyPEM(f *testing.F) {
	key, _ := GenerateKey(ECDSAP256)
	p, _ := MarshalKeyPEM(key)
	f.Add(p)
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := ParseKeyPEM(data)
		if err == nil && k == nil {
			t.Fatal("no error and no key")
		}
	})
}
