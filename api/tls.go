package api

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
)

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

// PinnedClientTLS is the agent's side of every call to the lender's
// agent API (enrollment, phase reports): it trusts the server only if the
// chain it sends holds a CA with the given fingerprint that signed the
// leaf, and that leaf is the lender's serving certificate for host (the
// ferry.lender URL's host), see CheckLenderLeaf. The agent has no CA file,
// only the pin from the command line. client may be nil (enrollment) or
// the one-time certificate.
func PinnedClientTLS(fingerprint, host string, client *tls.Certificate) *tls.Config {
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true, // replaced by the pin check below
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			return verifyPinned(raw, fingerprint, host)
		},
	}
	if client != nil {
		cfg.Certificates = []tls.Certificate{*client}
	}
	return cfg
}

func verifyPinned(raw [][]byte, fingerprint, host string) error {
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
		return CheckLenderLeaf(leaf, host)
	}
	return fmt.Errorf("no certificate in the server's chain has the pinned fingerprint %s", fingerprint)
}

// CheckLenderLeaf tells the lender's serving certificate apart from the
// other leaves the lender CA signs: the one-time certificates of lent
// servers, whose keys the borrowers' roots hold. A lent server on the
// lender network must not pass as the lender, or it could answer other
// servers' enrollment and hand them its own gateway, CA, image and root.
// Three independent marks, each enough on its own:
//   - no ferry: URI (every one-time certificate names its lease in one);
//   - extended key usage serverAuth, explicitly (one-time certificates
//     carry clientAuth only; a leaf without the extension is refused,
//     although X.509 would read its absence as "any");
//   - a DNS or IP SAN matching host, the ferry.lender URL's host (the
//     lender signs no SANs into one-time certificates).
func CheckLenderLeaf(leaf *x509.Certificate, host string) error {
	for _, u := range leaf.URIs {
		if u.Scheme == "ferry" {
			return fmt.Errorf("server presented the one-time certificate %q (serial %x) of a lent server, not the lender's serving certificate",
				leaf.Subject.CommonName, leaf.SerialNumber)
		}
	}
	if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
		return fmt.Errorf("server certificate %q (serial %x) is not for TLS servers (no serverAuth extended key usage)",
			leaf.Subject.CommonName, leaf.SerialNumber)
	}
	if host == "" {
		return errors.New("no lender host name to check the server certificate against")
	}
	if err := leaf.VerifyHostname(host); err != nil {
		return fmt.Errorf("server certificate %q (serial %x) is not the lender's: %w", leaf.Subject.CommonName, leaf.SerialNumber, err)
	}
	return nil
}
