// Package lenderca is the lender's certificate authority: it signs only
// one-time certificates for lent servers, each bound to one lease and
// expiring with it, against single-use enrollment tokens; it revokes them
// at return and publishes a CRL.
//
// The CA key is ECDSA P-256, made by Init and kept in a 0600 file beside
// its self-signed certificate. Init also makes the certificate the lender's
// agent-facing HTTPS listener presents; agents pin the CA by fingerprint.
package lenderca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"ferry/api"
	"ferry/internal/atomicfile"
	"ferry/pki"
)

// Files in the CA directory.
const (
	CAKeyFile   = "ca.key"
	CACertFile  = "ca.pem"
	TLSKeyFile  = "tls.key"
	TLSCertFile = "tls.pem"
)

// CA signs one-time server certificates.
type CA struct {
	Cert *x509.Certificate
	key  crypto.Signer
}

// Init makes a new CA and the agent listener's certificate (for hosts,
// IP addresses or names) in dir. It refuses to overwrite an existing CA.
func Init(dir string, hosts []string, now time.Time) (*CA, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("lenderca: make %s: %w", dir, err)
	}
	ca, files, err := Generate(hosts, now)
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		if err := writeNew(filepath.Join(dir, f.Name), f.PEM, f.Mode); err != nil {
			return nil, err
		}
	}
	return ca, nil
}

// File is one file of a CA directory, in memory.
type File struct {
	Name string // CACertFile, CAKeyFile, TLSCertFile or TLSKeyFile
	PEM  []byte
	Mode os.FileMode // 0600 for keys
}

// Generate makes a new CA and the agent listener's certificate in
// memory, as the files Init would write: for a caller that writes them
// all or none (ferry lender init).
func Generate(hosts []string, now time.Time) (*CA, []File, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("lenderca: CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          randSerial(),
		Subject:               pkix.Name{CommonName: "ferry lender CA", Organization: []string{"ferry"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("lenderca: self-sign: %w", err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &CA{Cert: cert, key: key}
	keyPEM, err := keyFile(key)
	if err != nil {
		return nil, nil, err
	}
	tlsCert, tlsKey, err := ca.issueTLS(hosts, now)
	if err != nil {
		return nil, nil, err
	}
	return ca, []File{
		{CACertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644},
		{CAKeyFile, keyPEM, 0o600},
		{TLSCertFile, tlsCert, 0o644},
		{TLSKeyFile, tlsKey, 0o600},
	}, nil
}

// TLSRenewBefore is how long before its end `ferry lender serve` renews
// the agent listener's certificate (RenewTLS): the time ExpirySoon
// warnings start, so a lender that serves never gets to them.
const TLSRenewBefore = pki.ExpirySoon

// tlsTemplate is the agent listener's certificate from now: two years,
// for the names in ips and dns.
func tlsTemplate(subject pkix.Name, ips []net.IP, dns []string, now time.Time) *x509.Certificate {
	return &x509.Certificate{
		SerialNumber: randSerial(),
		Subject:      subject,
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(2, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  ips,
		DNSNames:     dns,
	}
}

// issueTLS makes the agent listener's key and certificate (PEM).
func (ca *CA) issueTLS(hosts []string, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("lenderca: TLS key: %w", err)
	}
	var ips []net.IP
	var dns []string
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip)
		} else {
			dns = append(dns, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tlsTemplate(pkix.Name{CommonName: "ferry lender"}, ips, dns, now), ca.Cert, key.Public(), ca.key)
	if err != nil {
		return nil, nil, fmt.Errorf("lenderca: sign TLS certificate: %w", err)
	}
	keyPEM, err = keyFile(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM, nil
}

// RenewTLS replaces the agent listener's certificate in dir (tls.pem)
// by one for the same key, subject and names, valid two years from now,
// and returns it. Only tls.pem changes, atomically, so a crash leaves
// the old pair or the new one, never a certificate without its key.
// Agents pin the CA, not this certificate: they take the new one at
// their next connection.
func (ca *CA) RenewTLS(dir string, now time.Time) (*x509.Certificate, error) {
	certFile, keyFile := filepath.Join(dir, TLSCertFile), filepath.Join(dir, TLSKeyFile)
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("lenderca: renew %s: %w", certFile, err)
	}
	old := pair.Leaf
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if old == nil || !ok {
		return nil, fmt.Errorf("lenderca: renew %s: no certificate or no signing key in %s", certFile, keyFile)
	}
	der, err := x509.CreateCertificate(rand.Reader, tlsTemplate(old.Subject, old.IPAddresses, old.DNSNames, now), ca.Cert, signer.Public(), ca.key)
	if err != nil {
		return nil, fmt.Errorf("lenderca: renew %s: sign: %w", certFile, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("lenderca: renew %s: %w", certFile, err)
	}
	if err := atomicfile.Write(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return nil, fmt.Errorf("lenderca: renew %s: %w", certFile, err)
	}
	return cert, nil
}

// Load reads the CA of dir.
func Load(dir string) (*CA, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, CACertFile))
	if err != nil {
		return nil, fmt.Errorf("lenderca: %w", err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if err != nil {
		return nil, fmt.Errorf("lenderca: %w", err)
	}
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return nil, fmt.Errorf("lenderca: %s: no PEM in %s or %s", dir, CACertFile, CAKeyFile)
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("lenderca: %s: %w", CACertFile, err)
	}
	key, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("lenderca: %s: %w", CAKeyFile, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("lenderca: %s: key of type %T cannot sign", CAKeyFile, key)
	}
	if !pki.KeyMatches(cert, signer) {
		return nil, fmt.Errorf("lenderca: %s: %s is not the key of %s", dir, CAKeyFile, CACertFile)
	}
	return &CA{Cert: cert, key: signer}, nil
}

// Fingerprint is the pin agents get on their kernel command line.
func (ca *CA) Fingerprint() string { return api.Fingerprint(ca.Cert.Raw) }

// PEM is the CA certificate in PEM.
func (ca *CA) PEM() string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw}))
}

func randSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return n
}

func keyFile(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("lenderca: marshal key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// writeNew writes a file that must not exist yet.
func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("lenderca: %s exists: refusing to overwrite a CA", path)
	}
	if err != nil {
		return fmt.Errorf("lenderca: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("lenderca: write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("lenderca: sync %s: %w", path, err)
	}
	return f.Close()
}
