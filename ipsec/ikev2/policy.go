package ikev2

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrNoProposalChosen means no proposal was acceptable: the responder
// answers NO_PROPOSAL_CHOSEN.
var ErrNoProposalChosen = errors.New("ikev2: no acceptable proposal")

// Policy is the set of transforms a responder accepts for one protocol.
// ferry's defaults refuse anything weaker than AES-256-GCM; WithLegacy
// opts in to AES-CBC with HMAC-SHA2-256-128 and 128-bit AES-GCM.
type Policy struct {
	Protocol ProtocolID
	Encr     []Transform // ID and KeyLength
	PRF      []uint16    // IKE only
	Integ    []uint16    // for non-AEAD ciphers
	DH       []uint16
	ESN      []uint16 // ESP only
	// RequireDH refuses proposals without a DH group: always for IKE, and
	// for ESP when perfect forward secrecy is wanted.
	RequireDH bool
}

// DefaultIKEPolicy accepts aes256gcm16 with prfsha256 or prfsha384 and
// ecp256 or curve25519.
func DefaultIKEPolicy() Policy {
	return Policy{
		Protocol:  ProtoIKE,
		Encr:      []Transform{{Type: TransformENCR, ID: ENCR_AES_GCM_16, KeyLength: 256}},
		PRF:       []uint16{PRF_HMAC_SHA2_256, PRF_HMAC_SHA2_384},
		DH:        []uint16{DH_ECP256, DH_CURVE25519},
		RequireDH: true,
	}
}

// DefaultESPPolicy accepts aes256gcm16 with or without ESN; with pfs set
// it requires ecp256 or curve25519 in the CHILD SA proposal.
func DefaultESPPolicy(pfs bool) Policy {
	return Policy{
		Protocol:  ProtoESP,
		Encr:      []Transform{{Type: TransformENCR, ID: ENCR_AES_GCM_16, KeyLength: 256}},
		DH:        []uint16{DH_ECP256, DH_CURVE25519},
		ESN:       []uint16{ESN_YES, ESN_NONE},
		RequireDH: pfs,
	}
}

// WithLegacy returns a copy that also accepts aes128gcm16 and
// aes128/aes256 CBC with HMAC-SHA2-256-128.
func (p Policy) WithLegacy() Policy {
	p.Encr = append(slices.Clone(p.Encr),
		Transform{Type: TransformENCR, ID: ENCR_AES_GCM_16, KeyLength: 128},
		Transform{Type: TransformENCR, ID: ENCR_AES_CBC, KeyLength: 256},
		Transform{Type: TransformENCR, ID: ENCR_AES_CBC, KeyLength: 128})
	p.Integ = append(slices.Clone(p.Integ), AUTH_HMAC_SHA2_256_128)
	return p
}

// Select returns the first of the initiator's proposals (in its order) that
// the policy accepts, reduced to one transform per type: for each type the
// first acceptable one the initiator listed. The result keeps the
// initiator's proposal number and SPI. The error wraps ErrNoProposalChosen
// and says why each proposal failed.
func (p Policy) Select(sa *SA) (Proposal, error) {
	var why []string
	for _, prop := range sa.Proposals {
		got, err := p.selectOne(prop)
		if err == nil {
			return got, nil
		}
		why = append(why, fmt.Sprintf("proposal %d: %v", prop.Number, err))
	}
	return Proposal{}, fmt.Errorf("%w: %s", ErrNoProposalChosen, strings.Join(why, "; "))
}

func (p Policy) selectOne(prop Proposal) (Proposal, error) {
	if prop.Protocol != p.Protocol {
		return Proposal{}, fmt.Errorf("protocol %d, want %d", prop.Protocol, p.Protocol)
	}
	out := Proposal{Number: prop.Number, Protocol: prop.Protocol, SPI: prop.SPI}
	encr, ok := p.pick(prop, TransformENCR, func(t Transform) bool {
		return slices.ContainsFunc(p.Encr, func(e Transform) bool { return e.ID == t.ID && e.KeyLength == t.KeyLength })
	})
	if !ok {
		return Proposal{}, fmt.Errorf("no acceptable ENCR among %s", listOf(prop, TransformENCR))
	}
	out.Transforms = append(out.Transforms, encr)
	if p.Protocol == ProtoIKE {
		prf, ok := p.pick(prop, TransformPRF, func(t Transform) bool { return slices.Contains(p.PRF, t.ID) })
		if !ok {
			return Proposal{}, fmt.Errorf("no acceptable PRF among %s", listOf(prop, TransformPRF))
		}
		out.Transforms = append(out.Transforms, prf)
	}
	if encr.ID != ENCR_AES_GCM_16 {
		integ, ok := p.pick(prop, TransformINTEG, func(t Transform) bool { return slices.Contains(p.Integ, t.ID) })
		if !ok {
			return Proposal{}, fmt.Errorf("no acceptable INTEG for %s among %s", encr, listOf(prop, TransformINTEG))
		}
		out.Transforms = append(out.Transforms, integ)
	}
	dh, err := p.pickDH(prop)
	if err != nil {
		return Proposal{}, err
	}
	out.Transforms = append(out.Transforms, dh...)
	if p.Protocol == ProtoESP {
		esn, ok := p.pick(prop, TransformESN, func(t Transform) bool { return slices.Contains(p.ESN, t.ID) })
		if !ok {
			return Proposal{}, fmt.Errorf("no acceptable ESN among %s", listOf(prop, TransformESN))
		}
		out.Transforms = append(out.Transforms, esn)
	}
	return out, nil
}

// pickDH chooses the group; NONE or no DH transform is fine unless RequireDH.
func (p Policy) pickDH(prop Proposal) ([]Transform, error) {
	has := slices.ContainsFunc(prop.Transforms, func(t Transform) bool { return t.Type == TransformDH })
	dh, ok := p.pick(prop, TransformDH, func(t Transform) bool {
		return slices.Contains(p.DH, t.ID) || t.ID == DH_NONE && !p.RequireDH
	})
	switch {
	case ok && dh.ID == DH_NONE:
		return nil, nil
	case ok:
		return []Transform{dh}, nil
	case !has && !p.RequireDH:
		return nil, nil
	}
	return nil, fmt.Errorf("no acceptable DH group among %s", listOf(prop, TransformDH))
}

func (p Policy) pick(prop Proposal, typ TransformType, ok func(Transform) bool) (Transform, bool) {
	for _, t := range prop.Transforms {
		if t.Type == typ && t.known() && ok(t) {
			return t, true
		}
	}
	return Transform{}, false
}

func listOf(prop Proposal, typ TransformType) string {
	var s []string
	for _, t := range prop.Transforms {
		if t.Type == typ {
			s = append(s, t.String())
		}
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ",")
}
