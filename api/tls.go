package api

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
)

// ServerTLS is the manager-to-manager server side: TLS 1.3 and a client
// certificate that chains to caFile, required.
func ServerTLS(certFile, keyFile, caFile string) (*tls.Config, error) {
	cert, pool, err := loadPair(certFile, keyFile, caFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
	}, nil
}

// ClientTLS is the manager-to-manager client side: TLS 1.3, our
// certificate, and the server verified against caFile.
func ClientTLS(certFile, keyFile, caFile string) (*tls.Config, error) {
	cert, pool, err := loadPair(certFile, keyFile, caFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
	}, nil
}

func loadPair(certFile, keyFile, caFile string) (tls.Certificate, *x509.CertPool, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("load key pair cert=%s key=%s: %w", certFile, keyFile, err)
	}
	data, err := os.ReadFile(caFile)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("read CA %s: %w", caFile, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return tls.Certificate{}, nil, fmt.Errorf("CA %s: no PEM certificate", caFile)
	}
	return cert, pool, nil
}

// Fingerprint is the SHA-256 of a certificate's DER, in lower-case hex:
// what A's kernel command line carries to pin the lender CA.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// PinnedClientTLS is the agent's side of enrollment: it trusts the server
// only if the chain it sends contains a CA with the given fingerprint that
// signed the leaf. The agent has no CA file, only the pin from the command
// line. client may be nil (enrollment) or the one-time certificate.
func PinnedClientTLS(fingerprint string, client *tls.Certificate) *tls.Config {
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true, // replaced by the pin check below
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			return verifyPinned(raw, fingerprint)
		},
	}
	if client != nil {
		cfg.Certificates = []tls.Certificate{*client}
	}
	return cfg
}

func verifyPinned(raw [][]byte, fingerprint string) error {
	if len(raw) < 2 {
		return errors.New("server sent no CA certificate with its leaf: cannot check the pin")
	}
	leaf, err := x509.ParseCertificate(raw[0])
	if err != nil {
		return fmt.Errorf("server leaf certificate: %w", err)
	}
	for _, der := range raw[1:] {
		if Fingerprint(der) != fingerprint {
			continue
		}
		ca, err := x509.ParseCertificate(der)
		if err != nil {
			return fmt.Errorf("pinned CA certificate: %w", err)
		}
		if err := leaf.CheckSignatureFrom(ca); err != nil {
			return fmt.Errorf("server leaf not signed by the pinned CA %s: %w", fingerprint, err)
		}
		return nil
	}
	return fmt.Errorf("no certificate in the server's chain has the pinned fingerprint %s", fingerprint)
}
