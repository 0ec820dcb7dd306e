package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"strings"
)

// Algorithm names a key type ferry can generate.
type Algorithm string

// The key types: ECDSA P-256 is the default (RFC 7427 method 14 with
// SHA-256, understood by every IKEv2 peer); Ed25519 is optional.
const (
	ECDSAP256 Algorithm = "ecdsa-p256"
	Ed25519   Algorithm = "ed25519"
)

// GenerateKey makes a fresh private key of the given algorithm, in memory.
func GenerateKey(alg Algorithm) (crypto.Signer, error) {
	switch alg {
	case ECDSAP256, "":
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("pki: generate ECDSA P-256 key: %w", err)
		}
		return k, nil
	case Ed25519:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("pki: generate Ed25519 key: %w", err)
		}
		return k, nil
	}
	return nil, fmt.Errorf("pki: unknown key algorithm %q (want %s or %s)", alg, ECDSAP256, Ed25519)
}

// Identity is what a certificate names its holder as.
type Identity struct {
	CommonName string
	DNSNames   []string
	IPs        []net.IP
}

// Validate refuses an identity a CA could not sign meaningfully.
func (id Identity) Validate() error {
	if id.CommonName == "" && len(id.DNSNames) == 0 && len(id.IPs) == 0 {
		return errors.New("pki: identity is empty: give a common name, a DNS name or an IP")
	}
	if len(id.CommonName) > 64 {
		return fmt.Errorf("pki: common name %.20q... is %d bytes, over the 64 of RFC 5280", id.CommonName, len(id.CommonName))
	}
	for _, d := range id.DNSNames {
		if d == "" || len(d) > 253 || strings.ContainsAny(d, " \t\r\n/\\@") {
			return fmt.Errorf("pki: DNS name %q is not a host name", d)
		}
	}
	return nil
}

// CreateCSR makes a PEM certificate signing request for key's public half,
// carrying id, signed by key.
func CreateCSR(key crypto.Signer, id Identity) ([]byte, error) {
	if err := id.Validate(); err != nil {
		return nil, err
	}
	tmpl := &x509.CertificateRequest{
		Subject:     pkix.Name{CommonName: id.CommonName},
		DNSNames:    id.DNSNames,
		IPAddresses: id.IPs,
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return nil, fmt.Errorf("pki: create CSR for %q: %w", id.CommonName, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// MarshalKeyPEM encodes key as PKCS#8 PEM.
func MarshalKeyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("pki: encode private key as PKCS#8: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}
