package ikev2

import (
	"bytes"
	"net/netip"
	"os"
	"testing"
)

// testdata/strongswan-ike-sa-init.bin is the first datagram strongSwan
// 5.9.8 (Debian 12 charon) sent as initiator from 10.31.0.1:500 to
// 10.31.0.2:5000 with proposals aes256gcm16-prfsha256-ecp256, captured by
// testdata/capture-strongswan.sh.
func TestDecodesStrongSwanIKESAInitByteExact(t *testing.T) {
	raw, err := os.ReadFile("testdata/strongswan-ike-sa-init.bin")
	if err != nil {
		t.Fatal(err)
	}
	m, err := DecodeMessage(raw)
	if err != nil {
		t.Fatal(err)
	}
	h := m.Header
	if h.Exchange != IKE_SA_INIT || !h.IsInitiator() || h.IsResponse() || h.MessageID != 0 || h.SPIr != 0 || h.SPIi == 0 {
		t.Fatalf("header %+v", h)
	}
	kinds := map[NotifyType][]byte{}
	var suite *Suite
	for _, p := range m.Payloads {
		switch p := p.(type) {
		case *SA:
			sel, err := DefaultIKEPolicy().Select(p)
			if err != nil {
				t.Fatal(err)
			}
			suite, _ = NewSuite(sel)
		case *KE:
			if p.Group != DH_ECP256 || len(p.Data) != 64 {
				t.Errorf("KE group %d, %d bytes", p.Group, len(p.Data))
			}
			if _, err := mustDH(t).SharedSecret(p.Data); err != nil {
				t.Errorf("strongSwan's ecp256 public value refused: %v", err)
			}
		case *Notify:
			kinds[p.Kind] = p.Data
		}
	}
	if suite == nil || suite.String() != "aes256gcm16-prfsha256-ecp256" {
		t.Fatalf("selected %v", suite)
	}
	if want := NATDetectionHash(h.SPIi, 0, netip.MustParseAddrPort("10.31.0.1:500")); !bytes.Equal(kinds[NAT_DETECTION_SOURCE_IP], want) {
		t.Errorf("NAT_DETECTION_SOURCE_IP = %x, we compute %x", kinds[NAT_DETECTION_SOURCE_IP], want)
	}
	if want := NATDetectionHash(h.SPIi, 0, netip.MustParseAddrPort("10.31.0.2:5000")); !bytes.Equal(kinds[NAT_DETECTION_DESTINATION_IP], want) {
		t.Errorf("NAT_DETECTION_DESTINATION_IP = %x, we compute %x", kinds[NAT_DETECTION_DESTINATION_IP], want)
	}
	if _, ok := kinds[IKEV2_FRAGMENTATION_SUPPORTED]; !ok {
		t.Error("no IKEV2_FRAGMENTATION_SUPPORTED")
	}
	hs, err := (&Notify{Kind: SIGNATURE_HASH_ALGORITHMS, Data: kinds[SIGNATURE_HASH_ALGORITHMS]}).SignatureHashes()
	if err != nil || len(hs) != 4 || hs[0] != HashSHA2_256 || hs[3] != HashIdentity {
		t.Errorf("signature hashes %v %v", hs, err)
	}
	again, err := m.Encode()
	if err != nil || !bytes.Equal(again, raw) {
		t.Fatalf("re-encoding differs from strongSwan's bytes (%v)", err)
	}
}

func mustDH(t *testing.T) *DH {
	d, err := newDHFromPrivate(DH_ECP256, bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return d
}
