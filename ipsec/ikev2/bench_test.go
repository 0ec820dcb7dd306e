package ikev2

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"os"
	"testing"
)

func BenchmarkDecodeStrongSwanInit(b *testing.B) {
	raw, err := os.ReadFile("testdata/strongswan-ike-sa-init.bin")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if _, err := DecodeMessage(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSealOpenIKEAuth(b *testing.B) {
	ci, cr := cipherPair(b, gcmSuite(b, ProtoIKE))
	h := Header{SPIi: 1, SPIr: 2, Exchange: IKE_AUTH, Flags: FlagInitiator, MessageID: 1}
	for b.Loop() {
		raw, err := ci.SealMessage(h, sampleAuthInner())
		if err != nil {
			b.Fatal(err)
		}
		if _, err := cr.OpenMessage(raw); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkResponderHandshakeCrypto is the responder's cryptographic work
// for one IKE_SA_INIT + IKE_AUTH with ecp256 and ECDSA P-256: a DH key and
// shared secret, SKEYSEED and the key split, one AUTH verified and one
// signed, CHILD SA KEYMAT.
func BenchmarkResponderHandshakeCrypto(b *testing.B) {
	s := gcmSuite(b, ProtoIKE)
	esp := gcmSuite(b, ProtoESP)
	peer, _ := NewDH(DH_ECP256, rand.Reader)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ni, nr := make([]byte, 32), make([]byte, 32)
	id := &ID{IDType: IDFQDN, Data: []byte("gw")}
	peerAuth, _ := SignAuth(key, make([]byte, 400), rand.Reader)
	for b.Loop() {
		d, _ := NewDH(DH_ECP256, rand.Reader)
		gir, err := d.SharedSecret(peer.KE().Data)
		if err != nil {
			b.Fatal(err)
		}
		k, _ := s.IKEKeys(s.SKEYSEED(ni, nr, gir), ni, nr, 1, 2)
		if err := VerifyAuth(key.Public(), peerAuth, make([]byte, 400)); err != nil {
			b.Fatal(err)
		}
		if _, err := SignAuth(key, SignedOctets(s.PRF, make([]byte, 300), ni, k.SKpr, id), rand.Reader); err != nil {
			b.Fatal(err)
		}
		esp.ChildKeys(s.PRF, k.SKd, nil, ni, nr)
	}
}

func BenchmarkDHX25519(b *testing.B) {
	peer, _ := NewDH(DH_CURVE25519, rand.Reader)
	for b.Loop() {
		d, _ := NewDH(DH_CURVE25519, rand.Reader)
		if _, err := d.SharedSecret(peer.KE().Data); err != nil {
			b.Fatal(err)
		}
	}
}
