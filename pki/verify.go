package pki

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"time"
)

// Reasons a peer certificate is refused; callers branch on them with
// errors.Is (IKE answers all of them with AUTHENTICATION_FAILED, but logs
// the reason).
var (
	ErrNoCertificate = errors.New("no certificate")
	ErrChainTooLong  = errors.New("chain too long")
	ErrNotYetValid   = errors.New("not yet valid")
	ErrExpired       = errors.New("expired")
	ErrKeyUsage      = errors.New("key usage forbids signatures")
	ErrUntrusted     = errors.New("does not chain to a trusted CA")
)

// Verifier checks IKE peer certificates against a CA pool.
type Verifier struct {
	Roots *x509.CertPool
	// Skew is the clock difference tolerated at both ends of a
	// certificate's validity window (lent servers boot with rough clocks).
	Skew time.Duration
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Peer is what a verified certificate says about the peer.
type Peer struct {
	Cert     *x509.Certificate
	Subject  string // RFC 4514 distinguished name, e.g. "CN=lease-42"
	DNSNames []string
	IPs      []net.IP
	Emails   []string
	Pin      string // SHA-256 of the SubjectPublicKeyInfo, hex
}

// Verify checks chain (end-entity certificate first, then intermediates in
// any order) and returns the peer it authenticates.
func (v *Verifier) Verify(chain []*x509.Certificate) (*Peer, error) {
	if len(chain) == 0 {
		return nil, fmt.Errorf("pki: verify peer: %w", ErrNoCertificate)
	}
	if len(chain) > MaxChainCert {
		return nil, fmt.Errorf("pki: verify peer: %d certificates: %w (limit %d)", len(chain), ErrChainTooLong, MaxChainCert)
	}
	leaf := chain[0]
	at, err := v.checkWindow(leaf)
	if err != nil {
		return nil, err
	}
	if leaf.KeyUsage != 0 && leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return nil, fmt.Errorf("pki: certificate %q (serial %s): %w (key usage 0x%x)", leaf.Subject, leaf.SerialNumber, ErrKeyUsage, leaf.KeyUsage)
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	opts := x509.VerifyOptions{
		Roots:         v.Roots,
		Intermediates: inter,
		CurrentTime:   at,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}
	if _, err := leaf.Verify(opts); err != nil {
		return nil, fmt.Errorf("pki: certificate %q (issuer %q): %w: %v", leaf.Subject, leaf.Issuer, ErrUntrusted, err)
	}
	pin, err := Pin(leaf.PublicKey)
	if err != nil {
		return nil, err
	}
	return &Peer{
		Cert:     leaf,
		Subject:  leaf.Subject.String(),
		DNSNames: leaf.DNSNames,
		IPs:      leaf.IPAddresses,
		Emails:   leaf.EmailAddresses,
		Pin:      pin,
	}, nil
}

// checkWindow refuses a leaf outside its validity window by more than the
// skew and returns the time at which to verify the chain: now, or the
// window's nearest edge when now is outside it but within the skew.
func (v *Verifier) checkWindow(leaf *x509.Certificate) (time.Time, error) {
	now := time.Now()
	if v.Now != nil {
		now = v.Now()
	}
	switch {
	case now.Add(v.Skew).Before(leaf.NotBefore):
		return now, fmt.Errorf("pki: certificate %q: %w: valid from %s, now %s (skew %s)",
			leaf.Subject, ErrNotYetValid, leaf.NotBefore.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), v.Skew)
	case now.Add(-v.Skew).After(leaf.NotAfter):
		return now, fmt.Errorf("pki: certificate %q: %w: valid until %s, now %s (skew %s)",
			leaf.Subject, ErrExpired, leaf.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), v.Skew)
	case now.Before(leaf.NotBefore):
		return leaf.NotBefore, nil
	case now.After(leaf.NotAfter):
		return leaf.NotAfter, nil
	}
	return now, nil
}

// PoolFromFile loads a CA pool from a PEM file of one or more certificates.
func PoolFromFile(path string) (*x509.CertPool, error) {
	certs, err := LoadCertsFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, nil
}
