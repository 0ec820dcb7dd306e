package pki

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"time"
)

// CA is a minimal certificate authority for tests and the lab: a
// self-signed ECDSA P-256 root that signs CSRs. The lender's real CA is
// not this.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// NewCA makes a self-signed CA named cn, valid from now-1h for validity.
func NewCA(cn string, validity time.Duration) (*CA, error) {
	key, err := GenerateKey(ECDSAP256)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("pki: self-sign CA %q: %w", cn, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: parse new CA %q: %w", cn, err)
	}
	return &CA{Cert: cert, Key: key}, nil
}

// CertPEM is the CA certificate in PEM.
func (ca *CA) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})
}

// Pool is a pool holding only this CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Sign issues an end-entity certificate for csr's key and names, valid
// from notBefore to notAfter, usable for IKE signatures.
func (ca *CA) Sign(csr *x509.CertificateRequest, notBefore, notAfter time.Time) (*x509.Certificate, error) {
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      csr.Subject,
		DNSNames:     csr.DNSNames,
		IPAddresses:  csr.IPAddresses,
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, csr.PublicKey, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("pki: CA %q sign %q: %w", ca.Cert.Subject.CommonName, csr.Subject.CommonName, err)
	}
	return x509.ParseCertificate(der)
}

// Issue makes a new key of alg and a certificate for id valid for
// validity from an hour ago: the shortcut tests and the lab use.
func (ca *CA) Issue(id Identity, alg Algorithm, validity time.Duration) (crypto.Signer, *x509.Certificate, error) {
	key, err := GenerateKey(alg)
	if err != nil {
		return nil, nil, err
	}
	csrPEM, err := CreateCSR(key, id)
	if err != nil {
		return nil, nil, err
	}
	csr, err := ParseCSRPEM(csrPEM)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	cert, err := ca.Sign(csr, now.Add(-time.Hour), now.Add(validity))
	if err != nil {
		return nil, nil, err
	}
	return key, cert, nil
}

// CertPEM encodes certificates as PEM, in order.
func CertPEM(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		panic(fmt.Sprintf("pki: crypto/rand failed: %v", err))
	}
	return n.Add(n, big.NewInt(1))
}
