package ikev2

import "fmt"

// Transform IDs ferry implements (IANA "IKEv2 Transform Type N" registries).
const (
	ENCR_AES_CBC    uint16 = 12
	ENCR_AES_GCM_16 uint16 = 20

	PRF_HMAC_SHA2_256 uint16 = 5
	PRF_HMAC_SHA2_384 uint16 = 6

	AUTH_NONE              uint16 = 0
	AUTH_HMAC_SHA2_256_128 uint16 = 12

	DH_NONE       uint16 = 0
	DH_ECP256     uint16 = 19
	DH_CURVE25519 uint16 = 31

	ESN_NONE uint16 = 0
	ESN_YES  uint16 = 1
)

// transformName names a transform for logs and errors.
func transformName(t TransformType, id, keyLen uint16) string {
	switch {
	case t == TransformENCR && id == ENCR_AES_GCM_16:
		return fmt.Sprintf("aes%dgcm16", keyLen)
	case t == TransformENCR && id == ENCR_AES_CBC:
		return fmt.Sprintf("aes%d", keyLen)
	case t == TransformPRF && id == PRF_HMAC_SHA2_256:
		return "prfsha256"
	case t == TransformPRF && id == PRF_HMAC_SHA2_384:
		return "prfsha384"
	case t == TransformINTEG && id == AUTH_HMAC_SHA2_256_128:
		return "sha256"
	case t == TransformDH && id == DH_ECP256:
		return "ecp256"
	case t == TransformDH && id == DH_CURVE25519:
		return "curve25519"
	case t == TransformESN && id == ESN_NONE:
		return "noesn"
	case t == TransformESN && id == ESN_YES:
		return "esn"
	}
	return fmt.Sprintf("transform(%d/%d)", t, id)
}

// String names the transform the way strongSwan's proposal strings do.
func (t Transform) String() string { return transformName(t.Type, t.ID, t.KeyLength) }

// known reports whether ferry implements the transform with its attributes.
func (t Transform) known() bool {
	if len(t.Other) != 0 {
		return false
	}
	switch t.Type {
	case TransformENCR:
		return (t.ID == ENCR_AES_GCM_16 || t.ID == ENCR_AES_CBC) &&
			(t.KeyLength == 128 || t.KeyLength == 192 || t.KeyLength == 256)
	case TransformPRF:
		return t.KeyLength == 0 && (t.ID == PRF_HMAC_SHA2_256 || t.ID == PRF_HMAC_SHA2_384)
	case TransformINTEG:
		return t.KeyLength == 0 && (t.ID == AUTH_NONE || t.ID == AUTH_HMAC_SHA2_256_128)
	case TransformDH:
		return t.KeyLength == 0 && (t.ID == DH_NONE || t.ID == DH_ECP256 || t.ID == DH_CURVE25519)
	case TransformESN:
		return t.KeyLength == 0 && (t.ID == ESN_NONE || t.ID == ESN_YES)
	}
	return false
}
