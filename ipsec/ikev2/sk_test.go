package ikev2

import (
	"bytes"
	"crypto/rand"
	"errors"
	mrand "math/rand/v2"
	"testing"
)

func cbcSuite(t testing.TB) *Suite {
	s, err := NewSuite(Proposal{Number: 1, Protocol: ProtoIKE, Transforms: []Transform{
		{Type: TransformENCR, ID: ENCR_AES_CBC, KeyLength: 256},
		{Type: TransformINTEG, ID: AUTH_HMAC_SHA2_256_128},
		{Type: TransformPRF, ID: PRF_HMAC_SHA2_256},
		{Type: TransformDH, ID: DH_CURVE25519},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// cipherPair returns the initiator's and the responder's Cipher of one SA.
func cipherPair(t testing.TB, s *Suite) (*Cipher, *Cipher) {
	ni, nr := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	k, err := s.IKEKeys(s.SKEYSEED(ni, nr, []byte("shared secret")), ni, nr, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	i, err := s.NewCipher(k, true, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.NewCipher(k, false, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return i, r
}

func TestSKCarriesPayloadsBothWaysAndRejectsTampering(t *testing.T) {
	for name, s := range map[string]*Suite{"aes256gcm16": gcmSuite(t, ProtoIKE), "aes256-sha256": cbcSuite(t)} {
		t.Run(name, func(t *testing.T) {
			ci, cr := cipherPair(t, s)
			h := Header{SPIi: 1, SPIr: 2, Exchange: IKE_AUTH, Flags: FlagInitiator, MessageID: 1}
			raw, err := ci.SealMessage(h, sampleAuthInner())
			if err != nil {
				t.Fatal(err)
			}
			m, err := cr.OpenMessage(raw)
			if err != nil {
				t.Fatal(err)
			}
			if len(m.Payloads) != len(sampleAuthInner()) {
				t.Fatalf("got %d inner payloads", len(m.Payloads))
			}
			if _, err := ci.OpenMessage(raw); !errors.Is(err, ErrAuthentication) {
				t.Fatalf("initiator opened its own message with the responder's key: %v", err)
			}
			for _, at := range []int{20, HeaderLen + 2, HeaderLen + 10, len(raw) - 1} {
				bad := append([]byte{}, raw...)
				bad[at] ^= 1
				if _, err := cr.OpenMessage(bad); err == nil {
					t.Errorf("flipped byte %d accepted", at)
				}
			}
		})
	}
}

func TestFragmentsReassembleInAnyOrderOnce(t *testing.T) {
	for name, s := range map[string]*Suite{"aes256gcm16": gcmSuite(t, ProtoIKE), "aes256-sha256": cbcSuite(t)} {
		t.Run(name, func(t *testing.T) {
			ci, cr := cipherPair(t, s)
			inner := append(sampleAuthInner(), &Cert{Encoding: CertX509Signature, Data: bytes.Repeat([]byte{0x42}, 3000)})
			h := Header{SPIi: 1, SPIr: 2, Exchange: IKE_AUTH, Flags: FlagInitiator, MessageID: 1}
			frags, err := ci.SealFragments(h, inner, 576)
			if err != nil {
				t.Fatal(err)
			}
			if len(frags) < 6 {
				t.Fatalf("%d fragments for 3 KB at 576 bytes", len(frags))
			}
			for _, f := range frags {
				if len(f) > 576 {
					t.Fatalf("fragment of %d bytes", len(f))
				}
			}
			order := mrand.Perm(len(frags))
			ra := cr.NewReassembler(1)
			var got *Message
			for n, i := range order {
				m, err := ra.Add(frags[i])
				if err != nil {
					t.Fatalf("fragment %d: %v", i+1, err)
				}
				if (m != nil) != (n == len(frags)-1) {
					t.Fatalf("after %d of %d fragments: message %v", n+1, len(frags), m != nil)
				}
				got = m
			}
			if len(got.Payloads) != len(inner) || !bytes.Equal(got.Payloads[len(inner)-1].(*Cert).Data, bytes.Repeat([]byte{0x42}, 3000)) {
				t.Fatalf("reassembled %d payloads", len(got.Payloads))
			}
		})
	}
}

func TestReassemblerDropsForgedDuplicateAndOversizedFragments(t *testing.T) {
	ci, cr := cipherPair(t, gcmSuite(t, ProtoIKE))
	h := Header{SPIi: 1, SPIr: 2, Exchange: IKE_AUTH, MessageID: 7}
	frags, err := ci.SealFragments(h, []Payload{&VendorID{Data: bytes.Repeat([]byte{1}, 1000)}}, 300)
	if err != nil {
		t.Fatal(err)
	}
	ra := cr.NewReassembler(7)
	forged := append([]byte{}, frags[0]...)
	forged[len(forged)-1] ^= 1
	if _, err := ra.Add(forged); !errors.Is(err, ErrAuthentication) {
		t.Fatalf("forged fragment: %v", err)
	}
	if _, err := ra.Add(frags[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := ra.Add(frags[0]); !errors.Is(err, ErrFragmentIgnored) {
		t.Fatalf("duplicate fragment: %v", err)
	}
	if _, err := cr.NewReassembler(8).Add(frags[1]); err == nil {
		t.Fatal("fragment of message 7 accepted for message 8")
	}
	if _, err := ci.SealFragments(h, []Payload{&VendorID{Data: make([]byte, 20000)}}, 300); err == nil {
		t.Fatal("more than MaxFragments fragments produced")
	}
}
