package ike

import (
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"ferry/ipsec/ikev2"
)

func espOffer(p ikev2.Policy, withDH bool, spiLen int) *ikev2.SA {
	return &ikev2.SA{Proposals: []ikev2.Proposal{proposal(p, make([]byte, spiLen), withDH)}}
}

func hasDH(p ikev2.Proposal) bool { return len(withoutDH(p.Transforms)) != len(p.Transforms) }

// One selection for IKE_AUTH and rekeys: IKE_AUTH has no key exchange, so
// a PFS policy must not refuse its CHILD_SA for lacking DH, nor answer
// with a DH group; a rekey under that policy needs DH; every refusal
// says why.
func TestESPSelectionInAuthAndRekey(t *testing.T) {
	d := fuzzResponder(t)
	pfs := ikev2.DefaultESPPolicy(true)
	d.cfg.ESPPolicy = pfs
	prop, _, r := d.selectESP(espOffer(pfs, false, 4), true)
	if r != nil {
		t.Fatalf("IKE_AUTH CHILD_SA without DH under a PFS policy refused: %v", r.reason)
	}
	if prop, _, r = d.selectESP(espOffer(pfs, true, 4), true); r != nil || hasDH(prop) {
		t.Fatalf("IKE_AUTH CHILD_SA offering DH: refusal %v, answer with DH %v; want accepted without DH", r, hasDH(prop))
	}
	if _, _, r := d.selectESP(espOffer(pfs, false, 4), false); r == nil || !strings.Contains(r.reason.Error(), "DH") {
		t.Fatalf("rekey without DH under a PFS policy: %v; want NO_PROPOSAL_CHOSEN naming DH", r)
	}
	prop, cs, r := d.selectESP(espOffer(pfs, true, 4), false)
	if r != nil || !hasDH(prop) || cs.DHGroup == ikev2.DH_NONE {
		t.Fatalf("rekey with DH under a PFS policy: %v, DH in answer %v; want a DH group chosen", r, hasDH(prop))
	}
	if _, _, r := d.selectESP(espOffer(pfs, false, 8), true); r == nil || !strings.Contains(r.reason.Error(), "SPI of 8 bytes") {
		t.Fatalf("8-byte ESP SPI: %v; want a refusal that names the SPI size", r)
	}
}

func TestAcceptedESPRefusesWhatWeDidNotOffer(t *testing.T) {
	d := fuzzResponder(t)
	spi := binary.BigEndian.AppendUint32(nil, 0x1234)
	cbc := ikev2.Proposal{Number: 1, Protocol: ikev2.ProtoESP, SPI: spi, Transforms: []ikev2.Transform{
		{Type: ikev2.TransformENCR, ID: ikev2.ENCR_AES_CBC, KeyLength: 256}, {Type: ikev2.TransformINTEG, ID: ikev2.AUTH_HMAC_SHA2_256_128},
		{Type: ikev2.TransformESN, ID: ikev2.ESN_NONE}}}
	good, _, _ := d.selectESP(espOffer(d.cfg.ESPPolicy, false, 4), true)
	withDH, _, _ := d.selectESP(espOffer(d.cfg.ESPPolicy, true, 4), false)
	for _, c := range []struct {
		name   string
		sa     *ikev2.SA
		inAuth bool
		want   string
	}{
		{"transform not offered", &ikev2.SA{Proposals: []ikev2.Proposal{cbc}}, false, "did not offer"},
		{"two proposals", &ikev2.SA{Proposals: []ikev2.Proposal{good, good}}, true, "exactly one"},
		{"DH in IKE_AUTH", &ikev2.SA{Proposals: []ikev2.Proposal{withDH}}, true, "IKE_AUTH"},
	} {
		if _, err := d.acceptedESP(c.sa, c.inAuth); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v; want an error saying %q", c.name, err, c.want)
		}
	}
	if _, err := d.acceptedESP(&ikev2.SA{Proposals: []ikev2.Proposal{good}}, true); err != nil {
		t.Errorf("the responder's own choice: %v", err)
	}
}

// Both ends with a PFS policy: the tunnel comes up (its first CHILD_SA
// has no key exchange) and rekeys with one.
func TestPFSPolicyConnectsAndRekeys(t *testing.T) {
	lb := newLoopback(t, func(c *Config) { c.ESPPolicy = ikev2.DefaultESPPolicy(true) })
	ini, _ := lb.initiator(t, "lease-pfs", true)
	ini.cfg.ESPPolicy = ikev2.DefaultESPPolicy(true)
	if err := lb.connect(ini); err != nil {
		t.Fatalf("connect with a PFS policy on both ends: %v", err)
	}
	first := lb.gw.Status()[0].Children[0].InSPI
	if n := ini.RekeyChildren(); n != 1 {
		t.Fatalf("%d rekeys started", n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		c := lb.gw.Status()[0].Children
		if len(c) == 1 && c[0].InSPI != first {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway CHILD_SAs %+v 5 s after a PFS rekey; want one new one", c)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
