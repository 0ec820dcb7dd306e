package authz

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// ErrRevoked is why a peer whose certificate is on the CRL is refused.
var ErrRevoked = errors.New("certificate revoked by its CA (CRL)")

// crl is the lender CA's revocation list as last loaded: serials (hex).
type crl struct {
	serials map[string]bool
	this    time.Time
	next    time.Time
}

// ParseCRL reads a CRL (DER, or PEM "X509 CRL") and checks that issuer
// signed it. A CRL is public but not trusted before that check: a forged
// one could only add serials, yet an unsigned list is no evidence.
func ParseCRL(data []byte, issuer *x509.Certificate) (*x509.RevocationList, error) {
	if blk, _ := pem.Decode(data); blk != nil {
		if blk.Type != "X509 CRL" {
			return nil, fmt.Errorf("authz: CRL: PEM block %q, want X509 CRL", blk.Type)
		}
		data = blk.Bytes
	}
	rl, err := x509.ParseRevocationList(data)
	if err != nil {
		return nil, fmt.Errorf("authz: CRL: %w", err)
	}
	if err := rl.CheckSignatureFrom(issuer); err != nil {
		return nil, fmt.Errorf("authz: CRL not signed by %s: %w", issuer.Subject, err)
	}
	if len(rl.RevokedCertificateEntries) > MaxEntries {
		return nil, fmt.Errorf("authz: CRL: %d entries, over %d", len(rl.RevokedCertificateEntries), MaxEntries)
	}
	return rl, nil
}

// SetCRL makes rl the revocation list AllowCert consults. Keys whose
// certificate AllowCert has seen and rl now lists are revoked at once
// (their SAs torn down), whether or not they are on the allow list.
func (l *List) SetCRL(ctx context.Context, rl *x509.RevocationList) {
	c := &crl{serials: make(map[string]bool, len(rl.RevokedCertificateEntries)), this: rl.ThisUpdate, next: rl.NextUpdate}
	for _, e := range rl.RevokedCertificateEntries {
		c.serials[e.SerialNumber.Text(16)] = true
	}
	l.mu.Lock()
	l.crl = c
	var gone []Entry
	for serial, pin := range l.serials {
		if c.serials[serial] {
			gone = append(gone, Entry{Pin: pin, Lease: l.entries[pin].Lease})
			delete(l.serials, serial)
		}
	}
	r := l.revoker
	l.mu.Unlock()
	l.log.Info("authz: CRL loaded", "revoked", len(c.serials), "this_update", c.this, "next_update", c.next)
	for _, e := range gone {
		l.revoked(ctx, r, e, "certificate on the CRL")
	}
}

// AllowCert is Allow for a peer's verified certificate: it refuses a
// certificate on the loaded CRL (ErrRevoked), then judges its key's pin.
// It remembers the serial of every certificate it let in, so a later CRL
// that lists it tears that peer down.
func (l *List) AllowCert(cert *x509.Certificate) (Entry, error) {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	pin := hex.EncodeToString(sum[:])
	serial := serialHex(cert.SerialNumber)
	l.mu.Lock()
	revoked := l.crl != nil && l.crl.serials[serial]
	l.mu.Unlock()
	if revoked {
		return Entry{}, fmt.Errorf("authz: pin %s, serial %s: %w", pin, serial, ErrRevoked)
	}
	e, err := l.Allow(pin)
	if err != nil {
		return e, err
	}
	l.mu.Lock()
	if l.serials == nil {
		l.serials = map[string]string{}
	}
	if len(l.serials) < MaxEntries {
		l.serials[serial] = pin
	}
	l.mu.Unlock()
	return e, nil
}

func serialHex(n *big.Int) string {
	if n == nil {
		return ""
	}
	return n.Text(16)
}

// LoadCRL reads the CRL file at path, checks issuer's signature and makes
// it the list's. On error the previous CRL stays.
func (l *List) LoadCRL(ctx context.Context, path string, issuer *x509.Certificate) error {
	data, err := readBounded(path)
	if err != nil {
		return err
	}
	rl, err := ParseCRL(data, issuer)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	l.SetCRL(ctx, rl)
	return nil
}

// WatchCRL loads the CRL file at path whenever its content changes,
// checking every interval, until ctx ends. Something else keeps the file
// current (the lender serves its CRL at /v1/crl); a CRL past its
// NextUpdate is still used, with a warning: it still lists what it lists.
func (l *List) WatchCRL(ctx context.Context, path string, issuer *x509.Certificate, interval time.Duration) {
	var prev [32]byte
	lastErr, warned := "", time.Time{}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		data, err := readBounded(path)
		if err == nil && sha256.Sum256(data) != prev {
			var rl *x509.RevocationList
			if rl, err = ParseCRL(data, issuer); err == nil {
				l.SetCRL(ctx, rl)
				prev = sha256.Sum256(data)
			}
		}
		if err != nil && err.Error() != lastErr {
			l.log.Warn("authz: CRL not loaded, keeping the previous one", "path", path, "err", err)
		}
		lastErr = ""
		if err != nil {
			lastErr = err.Error()
		}
		l.mu.Lock()
		c := l.crl
		l.mu.Unlock()
		if now := time.Now(); c != nil && !c.next.IsZero() && now.After(c.next) && now.Sub(warned) > time.Hour {
			l.log.Warn("authz: CRL is past its next update; still refusing what it lists", "path", path, "next_update", c.next)
			warned = now
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
