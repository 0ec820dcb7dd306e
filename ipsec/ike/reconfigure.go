package ike

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"ferry/pki"
)

// Live is what a running daemon may change without a restart (ferry
// gateway's reload): its own key pair, the CAs peers are verified
// against, what new CHILD_SAs may reach and the DNS they are told, and
// the timers. Everything else of Config (addresses, ports, the pool, the
// data plane, the policies) is fixed for the daemon's life.
type Live struct {
	Certs                      []*x509.Certificate // own chain, end entity first
	Key                        crypto.Signer
	CAs                        []*x509.Certificate
	LocalSubnets               []netip.Prefix
	DNS                        []netip.Addr
	DPD                        time.Duration
	IKELifetime                time.Duration
	ChildLifetime, RekeyMargin time.Duration
}

// Reconfigure replaces the daemon's Live settings, all or none: a chain
// whose leaf is not Key's, or no CA, is refused and nothing changes.
// Established SAs stay as they are: they were authenticated once and
// their traffic selectors were agreed (RFC 7296 has no renegotiation of
// either); the new CAs, key pair, subnets and DNS apply to the next
// IKE_AUTH, the new DPD from the next tick, and the new lifetimes to the
// rekey times chosen from now on. The peer verifier is rebuilt from CAs.
func (d *Daemon) Reconfigure(l Live) error {
	if len(l.Certs) == 0 || l.Certs[0] == nil || l.Key == nil {
		return errors.New("ike: reconfigure: own certificate and key are required")
	}
	own, err := x509.MarshalPKIXPublicKey(l.Key.Public())
	if err != nil {
		return fmt.Errorf("ike: reconfigure: key: %w", err)
	}
	if !bytes.Equal(own, l.Certs[0].RawSubjectPublicKeyInfo) {
		return fmt.Errorf("ike: reconfigure: certificate %q (serial %x) is not for the key", l.Certs[0].Subject, l.Certs[0].SerialNumber)
	}
	if len(l.CAs) == 0 {
		return errors.New("ike: reconfigure: no CA to verify peers with")
	}
	if l.DPD <= 0 {
		return fmt.Errorf("ike: reconfigure: DPD %v: want a positive interval", l.DPD)
	}
	pool := x509.NewCertPool()
	for _, ca := range l.CAs {
		pool.AddCert(ca)
	}
	certs := append([]*x509.Certificate(nil), l.Certs...)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.cfg.Key, d.cfg.CAs = l.Key, append([]*x509.Certificate(nil), l.CAs...)
	d.cfg.Verifier = &pki.Verifier{Roots: pool, Skew: 5 * time.Minute}
	d.cfg.LocalSubnets = append([]netip.Prefix(nil), l.LocalSubnets...)
	d.cfg.DNS = append([]netip.Addr(nil), l.DNS...)
	d.cfg.DPD, d.cfg.IKELifetime, d.cfg.ChildLifetime, d.cfg.RekeyMargin = l.DPD, l.IKELifetime, l.ChildLifetime, l.RekeyMargin
	d.certs.Store(&certs)
	return nil
}
