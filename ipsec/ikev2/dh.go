package ikev2

import (
	"crypto/ecdh"
	"fmt"
	"io"
)

// DH is one side's ephemeral Diffie-Hellman key for group 19 (ecp256) or
// 31 (curve25519).
type DH struct {
	group uint16
	priv  *ecdh.PrivateKey
}

func dhCurve(group uint16) (ecdh.Curve, error) {
	switch group {
	case DH_ECP256:
		return ecdh.P256(), nil
	case DH_CURVE25519:
		return ecdh.X25519(), nil
	}
	return nil, fmt.Errorf("ikev2: DH group %d not supported", group)
}

// NewDH makes a fresh key for group. rand is passed to crypto/ecdh, which
// may ignore it in favour of the system's source.
func NewDH(group uint16, rand io.Reader) (*DH, error) {
	c, err := dhCurve(group)
	if err != nil {
		return nil, err
	}
	k, err := c.GenerateKey(rand)
	if err != nil {
		return nil, fmt.Errorf("ikev2: DH group %d: generate key: %w", group, err)
	}
	return &DH{group: group, priv: k}, nil
}

// newDHFromPrivate rebuilds a key from its scalar (test vectors).
func newDHFromPrivate(group uint16, scalar []byte) (*DH, error) {
	c, err := dhCurve(group)
	if err != nil {
		return nil, err
	}
	k, err := c.NewPrivateKey(scalar)
	if err != nil {
		return nil, fmt.Errorf("ikev2: DH group %d: private key: %w", group, err)
	}
	return &DH{group: group, priv: k}, nil
}

// Group is the DH transform ID.
func (d *DH) Group() uint16 { return d.group }

// KE returns the Key Exchange payload: for ecp256 x || y without the 0x04
// prefix (RFC 5903 section 7), for curve25519 the 32-byte u (RFC 8031).
func (d *DH) KE() *KE {
	pub := d.priv.PublicKey().Bytes()
	if d.group == DH_ECP256 {
		pub = pub[1:]
	}
	return &KE{Group: d.group, Data: pub}
}

// SharedSecret computes g^ir from the peer's KE payload data: for ecp256
// the x coordinate (RFC 5903 section 9), for curve25519 X25519's output.
// Invalid points and an all-zero X25519 result are refused.
func (d *DH) SharedSecret(peer []byte) ([]byte, error) {
	want := 32
	if d.group == DH_ECP256 {
		want = 64
	}
	if len(peer) != want {
		return nil, fmt.Errorf("ikev2: DH group %d: peer KE data of %d bytes, want %d", d.group, len(peer), want)
	}
	if d.group == DH_ECP256 {
		peer = append([]byte{4}, peer...)
	}
	pub, err := d.priv.Curve().NewPublicKey(peer)
	if err != nil {
		return nil, fmt.Errorf("ikev2: DH group %d: peer public value: %w", d.group, err)
	}
	s, err := d.priv.ECDH(pub)
	if err != nil {
		return nil, fmt.Errorf("ikev2: DH group %d: %w", d.group, err)
	}
	return s, nil
}
