package gatewayctl

import (
	"crypto"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net/netip"
	"strings"
)

// Conn is the strongSwan connection that lets one lent server of one lease
// in: IKEv2, the peer authenticated by a certificate from the lender's CA
// for the lease (remote.cacerts) AND by its one-time public key
// (remote.pubkeys pins it) or, when the key is not known, by the exact
// subject the lender certified for this lease and server (RemoteID, see
// DNID); an inner address from Pool, and LocalTS as what the server may
// reach.
type Conn struct {
	Lease, Server string
	CACert        *x509.Certificate // the lender CA that signs the lease's certificates
	PubKey        crypto.PublicKey  // the server's one-time key; nil: RemoteID alone binds the server
	RemoteID      string            // the server's IKE identity; "" means %any
	LocalAddrs    []string          // the gateway's IKE addresses; none means any
	LocalID       string            // the gateway's identity; "" lets charon use its certificate's
	Pool          string            // name of a pool loaded in charon
	LocalTS       []string          // CIDR prefixes the server may reach
	// VIP, when valid, is the server's one inner address: Load gives the
	// conn a pool of that address alone (named as the conn) instead of
	// Pool, since the borrower restricts the server's NFS export to it.
	VIP netip.Addr
	// Proposals and ESPProposals default to what interoperates with ferry's
	// agent (see docs/LAB.md): aes256gcm16-prfsha256-ecp256, aes256gcm16-ecp256.
	Proposals, ESPProposals []string
}

// Name is the connection's name in charon: "ferry-LEASE-SERVER".
func (c Conn) Name() string { return "ferry-" + c.Lease + "-" + c.Server }

// maxField bounds every string the conn carries into charon.
const maxField = 255

// validateIDs checks the lease and server ids that name a connection.
func validateIDs(lease, server string) error {
	for _, f := range []struct{ name, v string }{{"lease", lease}, {"server", server}} {
		if f.v == "" || len(f.v) > 64 || f.v[0] == '.' || strings.Trim(f.v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != "" {
			return fmt.Errorf("conn %s %.80q: want 1 to 64 of [A-Za-z0-9._-], not starting with '.'", f.name, f.v)
		}
	}
	return nil
}

func (c Conn) validate() error {
	if err := validateIDs(c.Lease, c.Server); err != nil {
		return err
	}
	if c.CACert == nil {
		return fmt.Errorf("conn %s: needs the lender CA certificate", c.Name())
	}
	if c.PubKey == nil && c.remoteID() == "%any" {
		return fmt.Errorf("conn %s: needs the server's public key or its exact identity: any certificate of the lender CA would get in", c.Name())
	}
	for _, f := range []struct{ name, v string }{{"remote id", c.RemoteID}, {"local id", c.LocalID}, {"pool", c.Pool}} {
		if err := checkValue(f.v); err != nil {
			return fmt.Errorf("conn %s: %s: %w", c.Name(), f.name, err)
		}
	}
	for _, a := range c.LocalAddrs {
		if _, err := netip.ParseAddr(a); err != nil {
			return fmt.Errorf("conn %s: local address %q: %w", c.Name(), a, err)
		}
	}
	if c.VIP.IsValid() && (!c.VIP.Is4() || c.VIP.IsUnspecified() || c.VIP.IsMulticast()) {
		return fmt.Errorf("conn %s: virtual IP %s: want a unicast IPv4 address", c.Name(), c.VIP)
	}
	if len(c.LocalTS) == 0 {
		return fmt.Errorf("conn %s: no local traffic selectors: the server could reach nothing", c.Name())
	}
	for _, ts := range c.LocalTS {
		if _, err := netip.ParsePrefix(ts); err != nil {
			return fmt.Errorf("conn %s: local_ts %q: %w", c.Name(), ts, err)
		}
	}
	for _, p := range append(append([]string{}, c.Proposals...), c.ESPProposals...) {
		if p == "" || strings.Trim(p, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
			return fmt.Errorf("conn %s: proposal %.80q: want [a-z0-9-]", c.Name(), p)
		}
	}
	return nil
}

// checkValue refuses what could break out of a swanctl setting's value
// (quotes, backslashes, braces, control characters); '#' is allowed
// (asn1dn:#HEX identities).
func checkValue(v string) error {
	if len(v) > maxField {
		return fmt.Errorf("%d bytes, over %d", len(v), maxField)
	}
	for i, r := range v {
		if r < 0x20 || r == 0x7f || strings.ContainsRune("\"\\{}", r) {
			return fmt.Errorf("%.80q: character %q at %d not allowed", v, r, i)
		}
	}
	return nil
}

// pool is the name of the pool the conn's virtual IP comes from.
func (c Conn) pool() string {
	if c.VIP.IsValid() {
		return c.Name()
	}
	return c.Pool
}

func (c Conn) proposals() []string {
	if len(c.Proposals) == 0 {
		return []string{"aes256gcm16-prfsha256-ecp256"}
	}
	return c.Proposals
}

func (c Conn) espProposals() []string {
	if len(c.ESPProposals) == 0 {
		return []string{"aes256gcm16-ecp256"}
	}
	return c.ESPProposals
}

func (c Conn) remoteID() string {
	if c.RemoteID == "" {
		return "%any"
	}
	return c.RemoteID
}

// DNID is the strongSwan identity of the certificate subject with the
// given DER encoding (x509.Certificate.RawSubject): "asn1dn:#HEX", which,
// unlike the text form, keeps a '/' inside a CN ("LEASE/SERVER") intact.
func DNID(rawSubject []byte) string { return "asn1dn:#" + hex.EncodeToString(rawSubject) }

// pemFiles returns the PEM texts of the CA certificate and the public key
// (pub is nil without one).
func (c Conn) pemFiles() (ca, pub []byte, err error) {
	ca = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.CACert.Raw})
	if c.PubKey == nil {
		return ca, nil, nil
	}
	der, err := x509.MarshalPKIXPublicKey(c.PubKey)
	if err != nil {
		return nil, nil, fmt.Errorf("conn %s: public key %T: %w", c.Name(), c.PubKey, err)
	}
	pub = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	return ca, pub, nil
}
