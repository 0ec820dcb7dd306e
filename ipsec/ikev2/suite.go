package ikev2

import "fmt"

// Suite is a selected proposal in usable form: one transform of each type.
// For a CHILD SA PRF is nil (KEYMAT uses the IKE SA's PRF).
type Suite struct {
	Protocol ProtocolID
	Encr     Transform
	Integ    uint16 // AUTH_NONE for AEAD
	PRF      *PRF
	DHGroup  uint16 // DH_NONE when absent
	ESN      bool
}

// NewSuite checks a selected proposal (one transform per type, as from
// Policy.Select or the responder's answer) and returns its suite.
func NewSuite(p Proposal) (*Suite, error) {
	s := &Suite{Protocol: p.Protocol}
	seen := map[TransformType]bool{}
	for _, t := range p.Transforms {
		if seen[t.Type] {
			return nil, fmt.Errorf("ikev2: proposal %d: more than one transform of type %d", p.Number, t.Type)
		}
		seen[t.Type] = true
		if !t.known() {
			return nil, fmt.Errorf("ikev2: proposal %d: transform %s not supported", p.Number, t)
		}
		if err := s.set(t); err != nil {
			return nil, fmt.Errorf("ikev2: proposal %d: %w", p.Number, err)
		}
	}
	return s, s.check(p.Number)
}

func (s *Suite) set(t Transform) error {
	switch t.Type {
	case TransformENCR:
		s.Encr = t
	case TransformINTEG:
		s.Integ = t.ID
	case TransformPRF:
		prf, err := NewPRF(t.ID)
		if err != nil {
			return err
		}
		s.PRF = prf
	case TransformDH:
		s.DHGroup = t.ID
	case TransformESN:
		s.ESN = t.ID == ESN_YES
	}
	return nil
}

func (s *Suite) check(n uint8) error {
	switch {
	case s.Encr.Type != TransformENCR:
		return fmt.Errorf("ikev2: proposal %d has no ENCR transform", n)
	case s.AEAD() && s.Integ != AUTH_NONE:
		return fmt.Errorf("ikev2: proposal %d combines AEAD %s with an integrity transform", n, s.Encr)
	case !s.AEAD() && s.Integ == AUTH_NONE:
		return fmt.Errorf("ikev2: proposal %d: %s needs an integrity transform", n, s.Encr)
	case s.Protocol == ProtoIKE && (s.PRF == nil || s.DHGroup == DH_NONE):
		return fmt.Errorf("ikev2: IKE proposal %d needs a PRF and a DH group", n)
	}
	return nil
}

// AEAD reports whether the cipher is AES-GCM (no separate integrity key).
func (s *Suite) AEAD() bool { return s.Encr.ID == ENCR_AES_GCM_16 }

// EncrKeyLen is the encryption key length in bytes, with the 4-byte salt
// for AES-GCM (RFC 5282 section 7.1, RFC 4106 section 8.1).
func (s *Suite) EncrKeyLen() int {
	n := int(s.Encr.KeyLength) / 8
	if s.AEAD() {
		n += 4
	}
	return n
}

// IntegKeyLen is the integrity key length in bytes (0 for AEAD).
func (s *Suite) IntegKeyLen() int {
	if s.Integ == AUTH_HMAC_SHA2_256_128 {
		return 32
	}
	return 0
}

// String gives a strongSwan-style proposal string, e.g. aes256gcm16-prfsha256-ecp256.
func (s *Suite) String() string {
	out := s.Encr.String()
	if s.Integ != AUTH_NONE {
		out += "-" + transformName(TransformINTEG, s.Integ, 0)
	}
	if s.PRF != nil {
		out += "-" + transformName(TransformPRF, s.PRF.ID, 0)
	}
	if s.DHGroup != DH_NONE {
		out += "-" + transformName(TransformDH, s.DHGroup, 0)
	}
	if s.Protocol == ProtoESP && s.ESN {
		out += "-esn"
	}
	return out
}
