package ikev2

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"
)

// PRF is a negotiated pseudo-random function (HMAC-SHA2-256 or -384).
type PRF struct {
	ID   uint16
	hash func() hash.Hash
	size int
}

// NewPRF returns the PRF for a transform ID.
func NewPRF(id uint16) (*PRF, error) {
	switch id {
	case PRF_HMAC_SHA2_256:
		return &PRF{ID: id, hash: sha256.New, size: sha256.Size}, nil
	case PRF_HMAC_SHA2_384:
		return &PRF{ID: id, hash: sha512.New384, size: sha512.Size384}, nil
	}
	return nil, fmt.Errorf("ikev2: PRF transform %d not supported", id)
}

// Size is the output length, also the length of SK_d, SK_pi and SK_pr.
func (p *PRF) Size() int { return p.size }

// Sum returns prf(key, data...) with the data concatenated.
func (p *PRF) Sum(key []byte, data ...[]byte) []byte {
	m := hmac.New(p.hash, key)
	for _, d := range data {
		m.Write(d)
	}
	return m.Sum(nil)
}

// Plus is prf+ of RFC 7296 section 2.13: T1 | T2 | ... truncated to n
// bytes, with Ti = prf(K, Ti-1 | S | i). At most 255 blocks exist.
func (p *PRF) Plus(key, seed []byte, n int) ([]byte, error) {
	if n < 0 || n > 255*p.size {
		return nil, fmt.Errorf("ikev2: prf+ asked for %d bytes, max %d", n, 255*p.size)
	}
	out := make([]byte, 0, n+p.size)
	var t []byte
	for i := byte(1); len(out) < n; i++ {
		t = p.Sum(key, t, seed, []byte{i})
		out = append(out, t...)
	}
	return out[:n], nil
}
