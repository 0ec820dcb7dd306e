package ike

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
)

// ownCerts is the chain we send in IKE_AUTH, end entity first.
func (d *Daemon) ownCerts() []*x509.Certificate { return *d.certs.Load() }

// Certs is the chain the next IKE_AUTH sends.
func (d *Daemon) Certs() []*x509.Certificate { return d.ownCerts() }

// SetCerts replaces our certificate chain (end entity first) for every
// IKE_AUTH from now on: a renewed certificate for the same key, taken
// before the current one expires. Established SAs are not touched: an
// IKE SA is not re-authenticated, and rekeys send no certificates
// (RFC 7296 section 2.8). A chain whose leaf is for another key than
// ours is refused, since the AUTH payload is signed with our key.
func (d *Daemon) SetCerts(chain []*x509.Certificate) error {
	if len(chain) == 0 || chain[0] == nil {
		return errors.New("ike: set certificates: empty chain")
	}
	d.mu.Lock() // Reconfigure may replace the key
	key := d.cfg.Key
	d.mu.Unlock()
	own, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return fmt.Errorf("ike: set certificates: our key: %w", err)
	}
	if !bytes.Equal(own, chain[0].RawSubjectPublicKeyInfo) {
		return fmt.Errorf("ike: set certificates: %q (serial %x) is for another key", chain[0].Subject, chain[0].SerialNumber)
	}
	c := append([]*x509.Certificate(nil), chain...)
	d.certs.Store(&c)
	return nil
}
