package pki

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"os"
)

// Size bounds for untrusted PEM input: a chain of a few certificates is a
// few kilobytes; anything larger is refused before parsing.
const (
	MaxPEMSize   = 256 << 10
	MaxChainCert = 8
)

// ParseCertsPEM parses every CERTIFICATE block of data, in order. Other
// block types are refused so that a key file given as a certificate is
// noticed.
func ParseCertsPEM(data []byte) ([]*x509.Certificate, error) {
	if len(data) > MaxPEMSize {
		return nil, fmt.Errorf("pki: PEM input is %d bytes, over the limit of %d", len(data), MaxPEMSize)
	}
	var certs []*x509.Certificate
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("pki: PEM block %d is %q, want CERTIFICATE", len(certs)+1, b.Type)
		}
		if len(certs) == MaxChainCert*4 {
			return nil, fmt.Errorf("pki: more than %d certificates in one PEM input", MaxChainCert*4)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("pki: PEM block %d: %w", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("pki: no CERTIFICATE block in %d bytes of input", len(data))
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("pki: %d bytes of non-PEM data after certificate %d", len(rest), len(certs))
	}
	return certs, nil
}

// ParseKeyPEM parses a PKCS#8, SEC 1 (EC) or PKCS#1 private key.
func ParseKeyPEM(data []byte) (crypto.Signer, error) {
	if len(data) > MaxPEMSize {
		return nil, fmt.Errorf("pki: key PEM is %d bytes, over the limit of %d", len(data), MaxPEMSize)
	}
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, fmt.Errorf("pki: no PEM block in %d bytes of key input", len(data))
	}
	var (
		k   any
		err error
	)
	switch b.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(b.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	default:
		return nil, fmt.Errorf("pki: PEM block is %q, want a private key", b.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("pki: parse %s: %w", b.Type, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("pki: %s holds a %T, which cannot sign", b.Type, k)
	}
	return s, nil
}

// ParseCSRPEM parses and checks the signature of a PEM certificate request.
func ParseCSRPEM(data []byte) (*x509.CertificateRequest, error) {
	if len(data) > MaxPEMSize {
		return nil, fmt.Errorf("pki: CSR PEM is %d bytes, over the limit of %d", len(data), MaxPEMSize)
	}
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "CERTIFICATE REQUEST" {
		return nil, fmt.Errorf("pki: no CERTIFICATE REQUEST block in %d bytes of input", len(data))
	}
	csr, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pki: parse CSR: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("pki: CSR for %q: bad self-signature: %w", csr.Subject.CommonName, err)
	}
	return csr, nil
}

// Pin is the lowercase hex SHA-256 of a public key's DER SubjectPublicKeyInfo,
// the value the gateway's allow list holds.
func Pin(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("pki: encode public key %T: %w", pub, err)
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:]), nil
}

// LoadCertsFile reads a PEM certificate file, bounded to MaxPEMSize.
func LoadCertsFile(path string) ([]*x509.Certificate, error) {
	data, err := ReadPEMFile(path)
	if err != nil {
		return nil, err
	}
	c, err := ParseCertsPEM(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// LoadKeyFile reads a PEM private key file, bounded to MaxPEMSize.
func LoadKeyFile(path string) (crypto.Signer, error) {
	data, err := ReadPEMFile(path)
	if err != nil {
		return nil, err
	}
	k, err := ParseKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// ReadPEMFile reads a PEM file (a certificate, a key, a CSR) and refuses
// one over MaxPEMSize without reading further: a wrong path (a log, a
// device) is an error, not a file read whole into memory.
func ReadPEMFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	defer f.Close()
	return ReadPEM(f, path)
}

// ReadPEM reads r, named name in errors, refusing more than MaxPEMSize.
func ReadPEM(r io.Reader, name string) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxPEMSize+1))
	if err != nil {
		return nil, fmt.Errorf("pki: read %s: %w", name, err)
	}
	if len(data) > MaxPEMSize {
		return nil, fmt.Errorf("pki: %s is over the limit of %d bytes", name, MaxPEMSize)
	}
	return data, nil
}
