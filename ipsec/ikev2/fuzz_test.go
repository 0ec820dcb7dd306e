package ikev2

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// Fuzz targets: every decoder must refuse or accept without panicking, and
// what it accepts must encode back to bytes that decode to the same value.
// Seed corpora live in testdata/fuzz/<target>; FERRY_WRITE_SEEDS=1 go test
// -run TestWriteFuzzSeeds regenerates them from fuzzSeeds.

func FuzzDecodeMessage(f *testing.F) {
	for _, s := range fuzzSeeds(f)["FuzzDecodeMessage"] {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMessage(b)
		if err != nil {
			return
		}
		again, err := m.Encode()
		if err != nil {
			t.Fatalf("decoded message does not encode: %v", err)
		}
		m2, err := DecodeMessage(again)
		if err != nil {
			t.Fatalf("re-encoded message does not decode: %v", err)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip differs:\n%+v\n%+v", m, m2)
		}
	})
}

// fuzzPayload checks one payload decoder through DecodePayloads.
func fuzzPayload(f *testing.F, name string, t PayloadType) {
	for _, s := range fuzzSeeds(f)[name] {
		f.Add(s)
	}
	f.Fuzz(func(tt *testing.T, body []byte) {
		if len(body) > 0xffff-4 {
			return
		}
		raw := append([]byte{0, 0, byte((len(body) + 4) >> 8), byte(len(body) + 4)}, body...)
		ps, err := DecodePayloads(t, raw)
		if err != nil {
			return
		}
		first, again, err := AppendPayloads(nil, ps)
		if err != nil {
			tt.Fatalf("decoded %s does not encode: %v", t, err)
		}
		ps2, err := DecodePayloads(first, again)
		if err != nil || !reflect.DeepEqual(ps, ps2) {
			tt.Fatalf("%s round trip: %v\n%+v\n%+v", t, err, ps, ps2)
		}
	})
}

func FuzzDecodeSA(f *testing.F)       { fuzzPayload(f, "FuzzDecodeSA", PayloadSA) }
func FuzzDecodeKE(f *testing.F)       { fuzzPayload(f, "FuzzDecodeKE", PayloadKE) }
func FuzzDecodeID(f *testing.F)       { fuzzPayload(f, "FuzzDecodeID", PayloadIDi) }
func FuzzDecodeCert(f *testing.F)     { fuzzPayload(f, "FuzzDecodeCert", PayloadCERT) }
func FuzzDecodeCertReq(f *testing.F)  { fuzzPayload(f, "FuzzDecodeCertReq", PayloadCERTREQ) }
func FuzzDecodeAuth(f *testing.F)     { fuzzPayload(f, "FuzzDecodeAuth", PayloadAUTH) }
func FuzzDecodeNonce(f *testing.F)    { fuzzPayload(f, "FuzzDecodeNonce", PayloadNonce) }
func FuzzDecodeNotify(f *testing.F)   { fuzzPayload(f, "FuzzDecodeNotify", PayloadNotify) }
func FuzzDecodeDelete(f *testing.F)   { fuzzPayload(f, "FuzzDecodeDelete", PayloadDelete) }
func FuzzDecodeVendorID(f *testing.F) { fuzzPayload(f, "FuzzDecodeVendorID", PayloadVendorID) }
func FuzzDecodeTS(f *testing.F)       { fuzzPayload(f, "FuzzDecodeTS", PayloadTSi) }
func FuzzDecodeCP(f *testing.F)       { fuzzPayload(f, "FuzzDecodeCP", PayloadCP) }

// FuzzOpenMessage feeds arbitrary datagrams to a responder's SK cipher and
// fragment reassembler: refusals only, no panics.
func FuzzOpenMessage(f *testing.F) {
	for _, s := range fuzzSeeds(f)["FuzzOpenMessage"] {
		f.Add(s)
	}
	_, cr := cipherPair(f, gcmSuite(f, ProtoIKE))
	f.Fuzz(func(t *testing.T, b []byte) {
		cr.OpenMessage(b)
		cr.NewReassembler(1).Add(b)
	})
}

// fuzzSeeds builds the seed inputs from the test messages.
func fuzzSeeds(tb testing.TB) map[string][][]byte {
	init, err := sampleInit().Encode()
	if err != nil {
		tb.Fatal(err)
	}
	ci, _ := cipherPair(tb, gcmSuite(tb, ProtoIKE))
	h := Header{SPIi: 1, SPIr: 2, Exchange: IKE_AUTH, Flags: FlagInitiator, MessageID: 1}
	sk, _ := ci.SealMessage(h, sampleAuthInner())
	frags, _ := ci.SealFragments(h, sampleAuthInner(), 200)
	seeds := map[string][][]byte{
		"FuzzDecodeMessage": {init, sk, frags[0]},
		"FuzzOpenMessage":   {sk, frags[0], frags[1]},
	}
	for _, p := range append(sampleInit().Payloads, sampleAuthInner()...) {
		body, _ := p.appendBody(nil)
		name := "FuzzDecode" + map[PayloadType]string{PayloadSA: "SA", PayloadKE: "KE", PayloadIDi: "ID",
			PayloadCERT: "Cert", PayloadCERTREQ: "CertReq", PayloadAUTH: "Auth", PayloadNonce: "Nonce",
			PayloadNotify: "Notify", PayloadDelete: "Delete", PayloadVendorID: "VendorID", PayloadTSi: "TS",
			PayloadTSr: "TS", PayloadCP: "CP"}[p.Type()]
		seeds[name] = append(seeds[name], body)
	}
	if real := strongSwanInit(tb); real != nil {
		seeds["FuzzDecodeMessage"] = append(seeds["FuzzDecodeMessage"], real)
	}
	return seeds
}

func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("FERRY_WRITE_SEEDS") != "1" {
		t.Skip("set FERRY_WRITE_SEEDS=1 to regenerate testdata/fuzz")
	}
	for name, seeds := range fuzzSeeds(t) {
		dir := filepath.Join("testdata", "fuzz", name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i, s := range seeds {
			body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s)
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%d", i)), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// strongSwanInit returns the captured strongSwan IKE_SA_INIT request if
// testdata has one.
func strongSwanInit(tb testing.TB) []byte {
	b, err := os.ReadFile("testdata/strongswan-ike-sa-init.bin")
	if err != nil {
		return nil
	}
	return bytes.Clone(b)
}
