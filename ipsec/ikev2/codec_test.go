package ikev2

import (
	"bytes"
	"errors"
	"net/netip"
	"reflect"
	"testing"
)

func sampleInit() *Message {
	return &Message{
		Header: Header{SPIi: 0x0102030405060708, Exchange: IKE_SA_INIT, Flags: FlagInitiator},
		Payloads: []Payload{
			&SA{Proposals: []Proposal{{Number: 1, Protocol: ProtoIKE, Transforms: []Transform{
				{Type: TransformENCR, ID: ENCR_AES_GCM_16, KeyLength: 256},
				{Type: TransformPRF, ID: PRF_HMAC_SHA2_256},
				{Type: TransformDH, ID: DH_ECP256},
			}}}},
			&KE{Group: DH_ECP256, Data: bytes.Repeat([]byte{7}, 64)},
			&Nonce{Data: bytes.Repeat([]byte{9}, 32)},
			&Notify{Kind: NAT_DETECTION_SOURCE_IP, Data: bytes.Repeat([]byte{1}, 20)},
			&Notify{Kind: IKEV2_FRAGMENTATION_SUPPORTED},
			NewSignatureHashes(HashSHA2_256, HashIdentity),
		},
	}
}

func sampleAuthInner() []Payload {
	return []Payload{
		&ID{IDType: IDDerAsn1DN, Data: []byte{0x30, 0x00}},
		&Cert{Encoding: CertX509Signature, Data: []byte{0x30, 0x82, 0, 0}},
		&CertReq{Encoding: CertX509Signature, Data: bytes.Repeat([]byte{3}, 20)},
		&Auth{Method: AuthDigitalSignature, Data: []byte{1, 2, 3}},
		&CP{CfgType: CfgRequest, Attrs: []CfgAttr{{Type: InternalIP4Address}, {Type: InternalIP4DNS}, {Type: InternalIP6Address, Value: make([]byte, 17)}}},
		&SA{Proposals: []Proposal{{Number: 1, Protocol: ProtoESP, SPI: []byte{1, 2, 3, 4}, Transforms: []Transform{
			{Type: TransformENCR, ID: ENCR_AES_GCM_16, KeyLength: 256},
			{Type: TransformESN, ID: ESN_NONE},
		}}}},
		&TS{Selectors: []Selector{SelectorFor(netip.MustParsePrefix("10.31.0.0/16")), SelectorFor(netip.MustParsePrefix("fd00::/64"))}},
		&TS{Responder: true, Selectors: []Selector{{IPProto: 6, StartPort: 22, EndPort: 22, Start: netip.MustParseAddr("10.31.1.1"), End: netip.MustParseAddr("10.31.1.1")}}},
		&Notify{Kind: USE_TRANSPORT_MODE},
		&Notify{Protocol: ProtoESP, SPI: []byte{9, 9, 9, 9}, Kind: REKEY_SA},
		&Delete{Protocol: ProtoESP, SPISize: 4, SPIs: [][]byte{{1, 2, 3, 4}, {5, 6, 7, 8}}},
		&Delete{Protocol: ProtoIKE},
		&VendorID{Data: []byte("ferry")},
	}
}

func TestMessageRoundTripsEveryPayload(t *testing.T) {
	m := sampleInit()
	raw, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeMessage(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Fatalf("round trip differs:\n got %+v\nwant %+v", got, m)
	}
	inner := sampleAuthInner()
	first, body, err := AppendPayloads(nil, inner)
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodePayloads(first, body)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, inner) {
		t.Fatalf("inner round trip differs:\n got %+v\nwant %+v", back, inner)
	}
}

func TestDecodeSkipsUnknownNonCriticalPayload(t *testing.T) {
	m := &Message{Header: Header{Exchange: INFORMATIONAL}, Payloads: []Payload{&VendorID{Data: []byte("x")}}}
	raw, _ := m.Encode()
	// Insert an unknown payload type 200 (non-critical) after the header.
	unk := []byte{byte(PayloadVendorID), 0x00, 0, 6, 0xaa, 0xbb}
	raw = spliceFirst(raw, 200, unk)
	got, err := DecodeMessage(raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Payloads) != 1 || got.Payloads[0].Type() != PayloadVendorID {
		t.Fatalf("payloads = %v, want only the vendor ID", got.Payloads)
	}
}

func TestDecodeReportsUnknownCriticalPayload(t *testing.T) {
	m := &Message{Header: Header{Exchange: INFORMATIONAL}, Payloads: []Payload{&VendorID{Data: []byte("x")}}}
	raw, _ := m.Encode()
	raw = spliceFirst(raw, 200, []byte{byte(PayloadVendorID), 0x80, 0, 4})
	_, err := DecodeMessage(raw)
	var uc *UnsupportedCriticalError
	if !errors.As(err, &uc) || uc.Type != 200 {
		t.Fatalf("err = %v, want UnsupportedCriticalError for 200", err)
	}
	if n := uc.Notify(); n.Kind != UNSUPPORTED_CRITICAL_PAYLOAD || !bytes.Equal(n.Data, []byte{200}) {
		t.Fatalf("notify = %+v", n)
	}
}

// spliceFirst puts a raw payload of type t in front of the existing chain.
func spliceFirst(raw []byte, t PayloadType, p []byte) []byte {
	out := append([]byte{}, raw[:HeaderLen]...)
	out[16] = byte(t)
	out = append(out, p...)
	out = append(out, raw[HeaderLen:]...)
	out[24], out[25], out[26], out[27] = 0, 0, byte(len(out)>>8), byte(len(out))
	return out
}

func TestDecodeRefusesMalformedMessages(t *testing.T) {
	good, _ := sampleInit().Encode()
	cases := map[string]struct {
		mutate func([]byte) []byte
		field  string
	}{
		"short header":      {func(b []byte) []byte { return b[:20] }, "message ID"},
		"length mismatch":   {func(b []byte) []byte { return b[:len(b)-1] }, "length"},
		"payload overruns":  {func(b []byte) []byte { b[HeaderLen+3] = 0xff; return b }, "payload body"},
		"payload too short": {func(b []byte) []byte { b[HeaderLen+2], b[HeaderLen+3] = 0, 2; return b }, "payload length"},
		"trailing bytes":    {func(b []byte) []byte { b = append(b, 0, 0); b[27] += 2; return b }, "next payload"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := DecodeMessage(c.mutate(append([]byte{}, good...)))
			var de *DecodeError
			if !errors.As(err, &de) || de.Field != c.field {
				t.Fatalf("err = %v, want DecodeError on field %q", err, c.field)
			}
		})
	}
}

func TestDecodeRefusesOtherMajorVersion(t *testing.T) {
	raw, _ := sampleInit().Encode()
	raw[17] = 0x30
	var ve *VersionError
	if _, err := DecodeMessage(raw); !errors.As(err, &ve) || ve.Major != 3 {
		t.Fatalf("err = %v, want VersionError 3", err)
	}
}

func TestDecodeRefusesTooManyPayloads(t *testing.T) {
	ps := make([]Payload, 0, MaxPayloads+1)
	for range MaxPayloads + 1 {
		ps = append(ps, &VendorID{})
	}
	_, body, _ := AppendPayloads(nil, ps[:MaxPayloads])
	body = append([]byte{byte(PayloadVendorID), 0, 0, 4}, body...)
	if _, err := DecodePayloads(PayloadVendorID, body); err == nil {
		t.Fatal("65 payloads accepted")
	}
}

func TestDecodeRefusesSKNotLast(t *testing.T) {
	m := &Message{Header: Header{Exchange: IKE_AUTH}, Payloads: []Payload{&Encrypted{Next: PayloadIDi, Data: make([]byte, 40)}}}
	raw, _ := m.Encode()
	raw = append(raw, 0, 0, 0, 4)
	raw[27] += 4
	if _, err := DecodeMessage(raw); err == nil {
		t.Fatal("bytes after SK accepted")
	}
}
