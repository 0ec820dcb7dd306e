package ikev2

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"io"
)

const (
	gcmIVLen  = 8  // explicit IV of ENCR_AES_GCM_16 (RFC 5282)
	gcmICVLen = 16 // ICV of ENCR_AES_GCM_16
	cbcIVLen  = aes.BlockSize
	hmacICV   = 16 // AUTH_HMAC_SHA2_256_128 truncation
)

// Cipher protects SK and SKF payloads of one IKE SA in both directions.
// The initiator's Cipher sends with SK_ei/SK_ai and receives with
// SK_er/SK_ar; the responder's the other way round. It is safe for
// concurrent use: it holds no mutable state (IVs are random).
type Cipher struct {
	aeadOut, aeadIn   cipher.AEAD
	saltOut, saltIn   []byte
	blockOut, blockIn cipher.Block
	integOut, integIn []byte
	rand              io.Reader
}

// NewCipher builds the SK cipher for one side of an IKE SA. rand supplies
// IVs and padding (crypto/rand.Reader in production).
func (s *Suite) NewCipher(k *IKEKeys, initiator bool, rand io.Reader) (*Cipher, error) {
	eo, ei, ao, ai := k.SKei, k.SKer, k.SKai, k.SKar
	if !initiator {
		eo, ei, ao, ai = ei, eo, ai, ao
	}
	if len(eo) != s.EncrKeyLen() || len(ei) != s.EncrKeyLen() || len(ao) != s.IntegKeyLen() || len(ai) != s.IntegKeyLen() {
		return nil, fmt.Errorf("ikev2: SK cipher %s: key lengths do not match the suite", s)
	}
	c := &Cipher{rand: rand, integOut: ao, integIn: ai}
	var err error
	if s.AEAD() {
		n := len(eo) - 4
		if c.aeadOut, err = newGCM(eo[:n]); err == nil {
			c.aeadIn, err = newGCM(ei[:n])
		}
		c.saltOut, c.saltIn = eo[n:], ei[n:]
	} else {
		if c.blockOut, err = aes.NewCipher(eo); err == nil {
			c.blockIn, err = aes.NewCipher(ei)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("ikev2: SK cipher %s: %w", s, err)
	}
	return c, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCMWithNonceSize(b, 12)
}

// Overhead is the bytes an encrypted payload adds beyond its plaintext for
// plaintext of n bytes: IV, padding, pad length and ICV.
func (c *Cipher) Overhead(n int) int {
	if c.aeadOut != nil {
		return gcmIVLen + 1 + gcmICVLen
	}
	padded := (n + 1 + aes.BlockSize - 1) / aes.BlockSize * aes.BlockSize
	return cbcIVLen + padded - n + hmacICV
}

// seal encrypts plaintext into the body of an SK/SKF payload. msg holds
// the message up to and including the payload's fixed header fields (the
// AAD, or the start of the integrity-protected data for CBC) and already
// has its final length written; the payload body is appended to it.
func (c *Cipher) seal(msg, plaintext []byte) ([]byte, error) {
	if c.aeadOut != nil {
		iv := make([]byte, gcmIVLen)
		if _, err := io.ReadFull(c.rand, iv); err != nil {
			return nil, fmt.Errorf("ikev2: SK IV: %w", err)
		}
		nonce := append(append([]byte{}, c.saltOut...), iv...)
		aad := msg
		pt := append(append([]byte{}, plaintext...), 0) // no padding, pad length 0
		msg = append(msg, iv...)
		return c.aeadOut.Seal(msg, nonce, pt, aad), nil
	}
	return c.sealCBC(msg, plaintext)
}

func (c *Cipher) sealCBC(msg, plaintext []byte) ([]byte, error) {
	padLen := aes.BlockSize - (len(plaintext)+1)%aes.BlockSize
	if padLen == aes.BlockSize {
		padLen = 0
	}
	pt := append(append([]byte{}, plaintext...), make([]byte, padLen+1)...)
	pt[len(pt)-1] = byte(padLen)
	iv := make([]byte, cbcIVLen)
	if _, err := io.ReadFull(c.rand, iv); err != nil {
		return nil, fmt.Errorf("ikev2: SK IV: %w", err)
	}
	msg = append(msg, iv...)
	ct := make([]byte, len(pt))
	cipher.NewCBCEncrypter(c.blockOut, iv).CryptBlocks(ct, pt)
	msg = append(msg, ct...)
	m := hmac.New(sha256.New, c.integOut)
	m.Write(msg)
	return append(msg, m.Sum(nil)[:hmacICV]...), nil
}

// open authenticates and decrypts an SK/SKF body. msg is the whole message
// and bodyAt the offset of the body (IV) in it; it returns the inner
// payload bytes with padding removed, or ErrAuthentication.
func (c *Cipher) open(msg []byte, bodyAt int) ([]byte, error) {
	body := msg[bodyAt:]
	if c.aeadIn != nil {
		if len(body) < gcmIVLen+gcmICVLen+1 {
			return nil, fmt.Errorf("ikev2: encrypted payload of %d bytes is shorter than IV, pad length and ICV", len(body))
		}
		nonce := append(append([]byte{}, c.saltIn...), body[:gcmIVLen]...)
		pt, err := c.aeadIn.Open(nil, nonce, body[gcmIVLen:], msg[:bodyAt])
		if err != nil {
			return nil, ErrAuthentication
		}
		return unpad(pt)
	}
	return c.openCBC(msg, bodyAt)
}

func (c *Cipher) openCBC(msg []byte, bodyAt int) ([]byte, error) {
	body := msg[bodyAt:]
	n := len(body) - cbcIVLen - hmacICV
	if n < aes.BlockSize || n%aes.BlockSize != 0 {
		return nil, fmt.Errorf("ikev2: encrypted payload of %d bytes does not hold IV, whole blocks and ICV", len(body))
	}
	m := hmac.New(sha256.New, c.integIn)
	m.Write(msg[:len(msg)-hmacICV])
	if subtle.ConstantTimeCompare(m.Sum(nil)[:hmacICV], msg[len(msg)-hmacICV:]) != 1 {
		return nil, ErrAuthentication
	}
	pt := make([]byte, n)
	cipher.NewCBCDecrypter(c.blockIn, body[:cbcIVLen]).CryptBlocks(pt, body[cbcIVLen:cbcIVLen+n])
	return unpad(pt)
}

func unpad(pt []byte) ([]byte, error) {
	if len(pt) == 0 {
		return nil, fmt.Errorf("ikev2: decrypted payload is empty, no pad length")
	}
	pad := int(pt[len(pt)-1])
	if pad+1 > len(pt) {
		return nil, fmt.Errorf("ikev2: pad length %d exceeds decrypted %d bytes", pad, len(pt))
	}
	return pt[:len(pt)-1-pad], nil
}
