package ikev2

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPRFMatchesRFC4231(t *testing.T) {
	cases := []struct {
		id        uint16
		key, data []byte
		want      string
	}{
		{PRF_HMAC_SHA2_256, bytes.Repeat([]byte{0x0b}, 20), []byte("Hi There"), "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
		{PRF_HMAC_SHA2_256, []byte("Jefe"), []byte("what do ya want for nothing?"), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
		{PRF_HMAC_SHA2_384, bytes.Repeat([]byte{0x0b}, 20), []byte("Hi There"), "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59cfaea9ea9076ede7f4af152e8b2fa9cb6"},
	}
	for _, c := range cases {
		p, err := NewPRF(c.id)
		if err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(p.Sum(c.key, c.data)); got != c.want {
			t.Errorf("prf %d(%q) = %s, want %s", c.id, c.data, got, c.want)
		}
	}
}

func TestPRFPlusChainsBlocksAndStopsAt255(t *testing.T) {
	p, _ := NewPRF(PRF_HMAC_SHA2_256)
	k, s := []byte("key"), []byte("seed")
	got, err := p.Plus(k, s, 40)
	if err != nil {
		t.Fatal(err)
	}
	t1 := p.Sum(k, s, []byte{1})
	t2 := p.Sum(k, t1, s, []byte{2})
	if !bytes.Equal(got, append(t1, t2[:8]...)) {
		t.Fatalf("prf+ = %x, want T1 | T2[:8]", got)
	}
	if _, err := p.Plus(k, s, 255*32+1); err == nil {
		t.Fatal("prf+ beyond 255 blocks accepted")
	}
}

// RFC 5903 section 8.1: the 256-bit random ECP group.
func TestDHGroup19MatchesRFC5903(t *testing.T) {
	i, _ := newDHFromPrivate(DH_ECP256, unhex(t, "C88F01F510D9AC3F70A292DAA2316DE544E9AAB8AFE84049C62A9C57862D1433"))
	r, _ := newDHFromPrivate(DH_ECP256, unhex(t, "C6EF9C5D78AE012A011164ACB397CE2088685D8F06BF9BE0B283AB46476BEE53"))
	gi := "dad0b65394221cf9b051e1feca5787d098dfe637fc90b9ef945d0c37725811805271a0461cdb8252d61f1c456fa3e59ab1f45b33accf5f58389e0577b8990bb3"
	if ke := i.KE(); hex.EncodeToString(ke.Data) != gi || ke.Group != 19 {
		t.Fatalf("KE = %d %x, want 19 %s (x||y, no 0x04)", ke.Group, ke.Data, gi)
	}
	s, err := i.SharedSecret(r.KE().Data)
	if err != nil {
		t.Fatal(err)
	}
	if want := "d6840f6b42f6edafd13116e0e12565202fef8e9ece7dce03812464d04b9442de"; hex.EncodeToString(s) != want {
		t.Fatalf("g^ir = %x, want %s", s, want)
	}
}

// RFC 7748 section 6.1.
func TestDHGroup31MatchesRFC7748(t *testing.T) {
	a, _ := newDHFromPrivate(DH_CURVE25519, unhex(t, "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"))
	b, _ := newDHFromPrivate(DH_CURVE25519, unhex(t, "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"))
	if got := hex.EncodeToString(a.KE().Data); got != "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a" {
		t.Fatalf("Alice's public = %s", got)
	}
	s, err := b.SharedSecret(a.KE().Data)
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(s); got != "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742" {
		t.Fatalf("shared = %s", got)
	}
}

func TestDHRefusesInvalidPeerValues(t *testing.T) {
	p, _ := NewDH(DH_ECP256, rand.Reader)
	x, _ := NewDH(DH_CURVE25519, rand.Reader)
	for name, c := range map[string]struct {
		d    *DH
		peer []byte
	}{
		"ecp256 short":        {p, make([]byte, 63)},
		"ecp256 not on curve": {p, bytes.Repeat([]byte{1}, 64)},
		"x25519 wrong length": {x, make([]byte, 33)},
		"x25519 low order":    {x, make([]byte, 32)},
	} {
		if _, err := c.d.SharedSecret(c.peer); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := NewDH(14, rand.Reader); err == nil {
		t.Error("MODP group 14 accepted")
	}
}

type xcheck struct {
	ECP256Gir, X25519Gir             string
	Ni, Nr, SKEYSEED                 string
	Keys                             map[string]string
	Keymat, KeymatPFS, RekeySKEYSEED string
	SKMessage, NATHash               string
}

func loadXcheck(t *testing.T) xcheck {
	b, err := os.ReadFile("testdata/xcheck.json")
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	var x xcheck
	for k, dst := range map[string]*string{"ecp256_gir": &x.ECP256Gir, "x25519_gir": &x.X25519Gir, "ni": &x.Ni, "nr": &x.Nr,
		"skeyseed": &x.SKEYSEED, "keymat": &x.Keymat, "keymat_pfs": &x.KeymatPFS, "rekey_skeyseed": &x.RekeySKEYSEED,
		"sk_message": &x.SKMessage, "nat_hash": &x.NATHash} {
		if err := json.Unmarshal(raw[k], dst); err != nil {
			t.Fatalf("%s: %v", k, err)
		}
	}
	if err := json.Unmarshal(raw["keys"], &x.Keys); err != nil {
		t.Fatal(err)
	}
	return x
}

func gcmSuite(t testing.TB, proto ProtocolID) *Suite {
	p := Proposal{Number: 1, Protocol: proto, Transforms: []Transform{{Type: TransformENCR, ID: ENCR_AES_GCM_16, KeyLength: 256}}}
	if proto == ProtoIKE {
		p.Transforms = append(p.Transforms, Transform{Type: TransformPRF, ID: PRF_HMAC_SHA2_256}, Transform{Type: TransformDH, ID: DH_ECP256})
	}
	s, err := NewSuite(p)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The expected values come from testdata/xcheck.py, which computes them
// with Python's cryptography module (OpenSSL), independently of Go.
func TestKeyDerivationMatchesIndependentComputation(t *testing.T) {
	x := loadXcheck(t)
	s := gcmSuite(t, ProtoIKE)
	i, _ := newDHFromPrivate(DH_ECP256, unhex(t, "C88F01F510D9AC3F70A292DAA2316DE544E9AAB8AFE84049C62A9C57862D1433"))
	r, _ := newDHFromPrivate(DH_ECP256, unhex(t, "C6EF9C5D78AE012A011164ACB397CE2088685D8F06BF9BE0B283AB46476BEE53"))
	gir, _ := r.SharedSecret(i.KE().Data)
	ni, nr := unhex(t, x.Ni), unhex(t, x.Nr)
	seed := s.SKEYSEED(ni, nr, gir)
	if hex.EncodeToString(seed) != x.SKEYSEED {
		t.Fatalf("SKEYSEED = %x, want %s", seed, x.SKEYSEED)
	}
	k, err := s.IKEKeys(seed, ni, nr, 0x0102030405060708, 0x1112131415161718)
	if err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string][]byte{"SKd": k.SKd, "SKei": k.SKei, "SKer": k.SKer, "SKpi": k.SKpi, "SKpr": k.SKpr} {
		if hex.EncodeToString(got) != x.Keys[name] {
			t.Errorf("%s = %x, want %s", name, got, x.Keys[name])
		}
	}
	if len(k.SKai) != 0 || len(k.SKar) != 0 {
		t.Errorf("AEAD suite has integrity keys %x %x", k.SKai, k.SKar)
	}
	esp := gcmSuite(t, ProtoESP)
	xgir := unhex(t, x.X25519Gir)
	for name, c := range map[string]struct {
		gir  []byte
		want string
	}{"no PFS": {nil, x.Keymat}, "PFS": {xgir, x.KeymatPFS}} {
		ck, err := esp.ChildKeys(s.PRF, k.SKd, c.gir, ni, nr)
		if err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(append(append(ck.EncrI, ck.IntegI...), append(ck.EncrR, ck.IntegR...)...)); got != c.want || len(ck.EncrI) != 36 {
			t.Errorf("KEYMAT %s = %s, want %s", name, got, c.want)
		}
	}
	if got := hex.EncodeToString(RekeySKEYSEED(s.PRF, k.SKd, xgir, ni, nr)); got != x.RekeySKEYSEED {
		t.Errorf("rekeyed SKEYSEED = %s, want %s", got, x.RekeySKEYSEED)
	}
	checkSKAgainstPython(t, s, k, unhex(t, x.SKMessage))
}

// checkSKAgainstPython opens the SK message Python sealed with SK_ei (the
// responder's view) and reseals it from the initiator side with the same IV.
func checkSKAgainstPython(t *testing.T, s *Suite, k *IKEKeys, want []byte) {
	resp, _ := s.NewCipher(k, false, rand.Reader)
	m, err := resp.OpenMessage(want)
	if err != nil {
		t.Fatalf("open Python's SK message: %v", err)
	}
	n, ok := m.Payloads[0].(*Nonce)
	if len(m.Payloads) != 1 || !ok || !bytes.Equal(n.Data, bytes.Repeat([]byte{0xaa}, 16)) {
		t.Fatalf("decrypted payloads = %+v", m.Payloads)
	}
	init, _ := s.NewCipher(k, true, bytes.NewReader(unhex(t, "0001020304050607")))
	got, err := init.SealMessage(m.Header, m.Payloads)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("sealed\n %x\nwant\n %x", got, want)
	}
}
