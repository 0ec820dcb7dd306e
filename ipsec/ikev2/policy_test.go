package ikev2

import (
	"errors"
	"testing"
)

func ikeProposal(n uint8, encr Transform, extra ...Transform) Proposal {
	return Proposal{Number: n, Protocol: ProtoIKE, Transforms: append([]Transform{encr,
		{Type: TransformPRF, ID: PRF_HMAC_SHA2_256}, {Type: TransformDH, ID: DH_CURVE25519}, {Type: TransformDH, ID: DH_ECP256}}, extra...)}
}

var (
	gcm256      = Transform{Type: TransformENCR, ID: ENCR_AES_GCM_16, KeyLength: 256}
	gcm128      = Transform{Type: TransformENCR, ID: ENCR_AES_GCM_16, KeyLength: 128}
	cbc256      = Transform{Type: TransformENCR, ID: ENCR_AES_CBC, KeyLength: 256}
	integSHA256 = Transform{Type: TransformINTEG, ID: AUTH_HMAC_SHA2_256_128}
)

func TestResponderPicksFirstAcceptableProposalInInitiatorsOrder(t *testing.T) {
	sa := &SA{Proposals: []Proposal{ikeProposal(1, gcm128), ikeProposal(2, gcm256), ikeProposal(3, cbc256, integSHA256)}}
	got, err := DefaultIKEPolicy().Select(sa)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSuite(got)
	if err != nil {
		t.Fatal(err)
	}
	if got.Number != 2 || s.String() != "aes256gcm16-prfsha256-curve25519" {
		t.Fatalf("chose proposal %d %s, want 2 aes256gcm16-prfsha256-curve25519 (initiator's first group)", got.Number, s)
	}
	got, _ = DefaultIKEPolicy().WithLegacy().Select(sa)
	if got.Number != 1 {
		t.Fatalf("legacy policy chose %d, want 1", got.Number)
	}
}

func TestPolicyRefusesWeakerSuitesUnlessConfigured(t *testing.T) {
	sa := &SA{Proposals: []Proposal{ikeProposal(1, cbc256, integSHA256), ikeProposal(2, gcm128)}}
	_, err := DefaultIKEPolicy().Select(sa)
	if !errors.Is(err, ErrNoProposalChosen) {
		t.Fatalf("weak suites accepted: %v", err)
	}
	got, err := DefaultIKEPolicy().WithLegacy().Select(sa)
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := NewSuite(got); s.String() != "aes256-sha256-prfsha256-curve25519" {
		t.Fatalf("chose %s", s)
	}
}

func TestPolicyRefusesTransformsWithUnknownAttributes(t *testing.T) {
	odd := gcm256
	odd.Other = []Attribute{{Type: 99, TV: true, Value: 1}}
	if _, err := DefaultIKEPolicy().Select(&SA{Proposals: []Proposal{ikeProposal(1, odd)}}); err == nil {
		t.Fatal("transform with unknown attribute selected")
	}
}

func TestESPPolicyHonoursPFS(t *testing.T) {
	noPFS := Proposal{Number: 1, Protocol: ProtoESP, SPI: []byte{1, 2, 3, 4}, Transforms: []Transform{gcm256, {Type: TransformESN, ID: ESN_NONE}}}
	withPFS := Proposal{Number: 2, Protocol: ProtoESP, SPI: []byte{1, 2, 3, 4}, Transforms: []Transform{gcm256, {Type: TransformDH, ID: DH_ECP256}, {Type: TransformESN, ID: ESN_YES}}}
	if _, err := DefaultESPPolicy(true).Select(&SA{Proposals: []Proposal{noPFS}}); err == nil {
		t.Fatal("PFS policy accepted a proposal without DH")
	}
	got, err := DefaultESPPolicy(true).Select(&SA{Proposals: []Proposal{noPFS, withPFS}})
	if err != nil || got.Number != 2 {
		t.Fatalf("got %d, %v", got.Number, err)
	}
	s, err := NewSuite(got)
	if err != nil || s.String() != "aes256gcm16-ecp256-esn" || string(got.SPI) != "\x01\x02\x03\x04" {
		t.Fatalf("suite %v %v spi %x", s, err, got.SPI)
	}
	if got, err := DefaultESPPolicy(false).Select(&SA{Proposals: []Proposal{noPFS}}); err != nil || got.Number != 1 {
		t.Fatalf("no-PFS policy: %d %v", got.Number, err)
	}
}

func TestNewSuiteRefusesIncompleteOrMixedProposals(t *testing.T) {
	for name, p := range map[string]Proposal{
		"no DH":        {Protocol: ProtoIKE, Transforms: []Transform{gcm256, {Type: TransformPRF, ID: PRF_HMAC_SHA2_256}}},
		"AEAD + INTEG": ikeProposal(1, gcm256, integSHA256),
		"CBC no INTEG": ikeProposal(1, cbc256),
		"two ENCR":     ikeProposal(1, gcm256, gcm128),
		"unknown PRF":  {Protocol: ProtoIKE, Transforms: []Transform{gcm256, {Type: TransformPRF, ID: 2}, {Type: TransformDH, ID: DH_ECP256}}},
	} {
		if _, err := NewSuite(p); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
