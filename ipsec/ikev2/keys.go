package ikev2

import (
	"encoding/binary"
	"fmt"
)

// IKEKeys are the keys of one IKE SA (RFC 7296 section 2.14). SKai/SKar
// are empty for AEAD suites; SKei/SKer include the GCM salt.
type IKEKeys struct {
	SKd, SKai, SKar, SKei, SKer, SKpi, SKpr []byte
}

// SKEYSEED is prf(Ni | Nr, g^ir) for a new IKE SA.
func (s *Suite) SKEYSEED(ni, nr, gir []byte) []byte {
	return s.PRF.Sum(append(append([]byte{}, ni...), nr...), gir)
}

// RekeySKEYSEED is prf(SK_d(old), g^ir(new) | Ni | Nr) for an IKE SA
// rekeyed with CREATE_CHILD_SA (RFC 7296 section 2.18); oldPRF is the PRF
// of the IKE SA being rekeyed, not of the new one.
func RekeySKEYSEED(oldPRF *PRF, oldSKd, gir, ni, nr []byte) []byte {
	return oldPRF.Sum(oldSKd, gir, ni, nr)
}

// IKEKeys splits prf+(SKEYSEED, Ni | Nr | SPIi | SPIr) into the seven keys.
func (s *Suite) IKEKeys(skeyseed, ni, nr []byte, spii, spir uint64) (*IKEKeys, error) {
	seed := append(append([]byte{}, ni...), nr...)
	seed = binary.BigEndian.AppendUint64(seed, spii)
	seed = binary.BigEndian.AppendUint64(seed, spir)
	p, e, a := s.PRF.Size(), s.EncrKeyLen(), s.IntegKeyLen()
	km, err := s.PRF.Plus(skeyseed, seed, 3*p+2*e+2*a)
	if err != nil {
		return nil, fmt.Errorf("ikev2: IKE keys for %s: %w", s, err)
	}
	k := &IKEKeys{}
	for _, dst := range []struct {
		k *[]byte
		n int
	}{{&k.SKd, p}, {&k.SKai, a}, {&k.SKar, a}, {&k.SKei, e}, {&k.SKer, e}, {&k.SKpi, p}, {&k.SKpr, p}} {
		*dst.k, km = km[:dst.n:dst.n], km[dst.n:]
	}
	return k, nil
}

// ChildKeys are the KEYMAT of one CHILD SA pair: initiator-to-responder
// first (RFC 7296 section 2.17). Encryption keys include the GCM salt.
type ChildKeys struct {
	EncrI, IntegI, EncrR, IntegR []byte
}

// ChildKeys derives KEYMAT for the CHILD SA suite s with the IKE SA's PRF
// and SK_d: prf+(SK_d, Ni | Nr), or prf+(SK_d, g^ir | Ni | Nr) when the
// exchange carried KE payloads (PFS); gir nil means no PFS.
func (s *Suite) ChildKeys(ikePRF *PRF, skd, gir, ni, nr []byte) (*ChildKeys, error) {
	seed := append(append(append([]byte{}, gir...), ni...), nr...)
	e, a := s.EncrKeyLen(), s.IntegKeyLen()
	km, err := ikePRF.Plus(skd, seed, 2*e+2*a)
	if err != nil {
		return nil, fmt.Errorf("ikev2: KEYMAT for %s: %w", s, err)
	}
	return &ChildKeys{
		EncrI: km[:e:e], IntegI: km[e : e+a : e+a],
		EncrR: km[e+a : 2*e+a : 2*e+a], IntegR: km[2*e+a:],
	}, nil
}
