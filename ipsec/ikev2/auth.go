package ikev2

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
)

// algECDSAWithSHA256 is the AlgorithmIdentifier of RFC 7427 appendix A.4.1.
func algECDSAWithSHA256() []byte {
	return []byte{0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02}
}

// algEd25519 is the AlgorithmIdentifier of RFC 8420 section 2 (id-Ed25519).
func algEd25519() []byte { return []byte{0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70} }

// SignedOctets returns the octets an AUTH payload covers (RFC 7296
// section 2.15): the sender's first message of the IKE SA (its whole
// IKE_SA_INIT message as sent), the peer's nonce data and
// prf(SK_px, the sender's ID payload body), where SK_px is SK_pi for the
// initiator and SK_pr for the responder.
func SignedOctets(prf *PRF, firstMessage, peerNonce, skp []byte, id *ID) []byte {
	out := make([]byte, 0, len(firstMessage)+len(peerNonce)+prf.Size())
	out = append(append(out, firstMessage...), peerNonce...)
	return append(out, prf.Sum(skp, id.Body())...)
}

// SignAuth makes a Digital Signature AUTH payload (RFC 7427, method 14)
// over octets with an ECDSA P-256 key (SHA-256, DER signature) or an
// Ed25519 key (PureEdDSA, RFC 8420).
func SignAuth(key crypto.Signer, octets []byte, rand io.Reader) (*Auth, error) {
	var alg, sig []byte
	var err error
	switch pub := key.Public().(type) {
	case *ecdsa.PublicKey:
		if pub.Curve != elliptic.P256() {
			return nil, fmt.Errorf("ikev2: AUTH: ECDSA key on %s, want P-256", pub.Curve.Params().Name)
		}
		d := sha256.Sum256(octets)
		alg = algECDSAWithSHA256()
		sig, err = key.Sign(rand, d[:], crypto.SHA256)
	case ed25519.PublicKey:
		alg = algEd25519()
		sig, err = key.Sign(rand, octets, crypto.Hash(0))
	default:
		return nil, fmt.Errorf("ikev2: AUTH: key type %T not supported (ECDSA P-256 or Ed25519)", pub)
	}
	if err != nil {
		return nil, fmt.Errorf("ikev2: AUTH: sign: %w", err)
	}
	data := append(append([]byte{byte(len(alg))}, alg...), sig...)
	return &Auth{Method: AuthDigitalSignature, Data: data}, nil
}

// ErrAuthFailed means the peer's AUTH payload did not verify: answer
// AUTHENTICATION_FAILED.
var ErrAuthFailed = errors.New("ikev2: AUTH verification failed")

// VerifyAuth checks a Digital Signature AUTH payload over octets with the
// public key of the peer's certificate. The signature algorithm named in
// the payload must match the key type. Errors wrap ErrAuthFailed.
func VerifyAuth(pub crypto.PublicKey, a *Auth, octets []byte) error {
	if a.Method != AuthDigitalSignature {
		return fmt.Errorf("%w: auth method %d, want %d (digital signature)", ErrAuthFailed, a.Method, AuthDigitalSignature)
	}
	if len(a.Data) < 1 || int(a.Data[0])+1 > len(a.Data) {
		return fmt.Errorf("%w: AlgorithmIdentifier length does not fit %d bytes of AUTH data", ErrAuthFailed, len(a.Data))
	}
	alg, sig := a.Data[1:1+int(a.Data[0])], a.Data[1+int(a.Data[0]):]
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if !bytes.Equal(alg, algECDSAWithSHA256()) || k.Curve != elliptic.P256() {
			return fmt.Errorf("%w: signature algorithm %x with an ECDSA %s key, want ecdsa-with-SHA256 and P-256", ErrAuthFailed, alg, k.Curve.Params().Name)
		}
		d := sha256.Sum256(octets)
		if !ecdsa.VerifyASN1(k, d[:], sig) {
			return fmt.Errorf("%w: ECDSA signature does not match", ErrAuthFailed)
		}
	case ed25519.PublicKey:
		if !bytes.Equal(alg, algEd25519()) {
			return fmt.Errorf("%w: signature algorithm %x with an Ed25519 key", ErrAuthFailed, alg)
		}
		if !ed25519.Verify(k, octets, sig) {
			return fmt.Errorf("%w: Ed25519 signature does not match", ErrAuthFailed)
		}
	default:
		return fmt.Errorf("%w: peer key type %T not supported", ErrAuthFailed, pub)
	}
	return nil
}
