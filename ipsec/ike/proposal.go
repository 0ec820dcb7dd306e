package ike

import (
	"errors"
	"fmt"

	"ferry/ipsec/ikev2"
)

// proposal turns a policy into the one proposal an initiator sends.
func proposal(p ikev2.Policy, spi []byte, withDH bool) ikev2.Proposal {
	prop := ikev2.Proposal{Number: 1, Protocol: p.Protocol, SPI: spi}
	prop.Transforms = append(prop.Transforms, p.Encr...)
	for _, id := range p.PRF {
		prop.Transforms = append(prop.Transforms, ikev2.Transform{Type: ikev2.TransformPRF, ID: id})
	}
	for _, id := range p.Integ {
		prop.Transforms = append(prop.Transforms, ikev2.Transform{Type: ikev2.TransformINTEG, ID: id})
	}
	if withDH {
		for _, id := range p.DH {
			prop.Transforms = append(prop.Transforms, ikev2.Transform{Type: ikev2.TransformDH, ID: id})
		}
	}
	for _, id := range p.ESN {
		prop.Transforms = append(prop.Transforms, ikev2.Transform{Type: ikev2.TransformESN, ID: id})
	}
	return prop
}

// The CHILD_SA proposal is chosen (responder) and checked (initiator) in
// one place for IKE_AUTH and CREATE_CHILD_SA. IKE_AUTH carries no key
// exchange (RFC 7296 section 1.2), so there a DH transform is neither
// required (whatever the policy says about PFS) nor answered; a rekey
// takes the policy as it is.

// espPolicy is the ESP policy for an exchange.
func (d *Daemon) espPolicy(inAuth bool) ikev2.Policy {
	p := d.cfg.ESPPolicy
	if inAuth {
		p.RequireDH = false
	}
	return p
}

// selectESP picks the proposal to answer from the peer's SA payload and
// the suite it makes.
func (d *Daemon) selectESP(sp *ikev2.SA, inAuth bool) (ikev2.Proposal, *ikev2.Suite, *refusal) {
	prop, err := d.espPolicy(inAuth).Select(sp)
	if err != nil {
		return prop, nil, &refusal{ikev2.NO_PROPOSAL_CHOSEN, fmt.Errorf("ESP proposal: %w", err)}
	}
	if len(prop.SPI) != 4 {
		return prop, nil, &refusal{ikev2.NO_PROPOSAL_CHOSEN, fmt.Errorf("ESP proposal %d: SPI of %d bytes, want 4", prop.Number, len(prop.SPI))}
	}
	if inAuth {
		prop.Transforms = withoutDH(prop.Transforms)
	}
	cs, err := ikev2.NewSuite(prop)
	if err != nil {
		return prop, nil, &refusal{ikev2.NO_PROPOSAL_CHOSEN, fmt.Errorf("ESP proposal %d: %w", prop.Number, err)}
	}
	return prop, cs, nil
}

// acceptedESP checks the responder's answer to our proposal: one
// proposal, a 4-byte SPI, transforms we offered (no DH in IKE_AUTH).
func (d *Daemon) acceptedESP(sp *ikev2.SA, inAuth bool) (*ikev2.Suite, error) {
	if sp == nil || len(sp.Proposals) != 1 {
		return nil, errors.New("answer lacks an SA payload with exactly one proposal")
	}
	prop := sp.Proposals[0]
	if len(prop.SPI) != 4 {
		return nil, fmt.Errorf("chosen ESP proposal has an SPI of %d bytes, want 4", len(prop.SPI))
	}
	if inAuth && len(withoutDH(prop.Transforms)) != len(prop.Transforms) {
		return nil, errors.New("chosen ESP proposal has a DH group in IKE_AUTH, which has no key exchange")
	}
	if _, err := d.espPolicy(inAuth).Select(sp); err != nil {
		return nil, fmt.Errorf("peer chose what we did not offer: %w", err)
	}
	return ikev2.NewSuite(prop)
}

func withoutDH(ts []ikev2.Transform) []ikev2.Transform {
	var out []ikev2.Transform
	for _, t := range ts {
		if t.Type != ikev2.TransformDH {
			out = append(out, t)
		}
	}
	return out
}
