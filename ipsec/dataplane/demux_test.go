package dataplane

import (
	"bytes"
	"testing"
)

func TestClassifySeparatesIKEFromESPOnPort4500(t *testing.T) {
	ike := append([]byte{0, 0, 0, 0}, bytes.Repeat([]byte{0x11}, 28)...)
	esp := append([]byte{0xc0, 0, 0, 1, 0, 0, 0, 1}, bytes.Repeat([]byte{0x22}, 40)...)
	for _, tc := range []struct {
		name string
		in   []byte
		kind Kind
		out  []byte
	}{
		{"keepalive", []byte{0xff}, Keepalive, nil},
		{"ike strips marker", ike, IKE, ike[4:]},
		{"esp unchanged", esp, ESP, esp},
		{"short", []byte{1, 2, 3}, Invalid, nil},
		{"empty", nil, Invalid, nil},
		{"lone zero", []byte{0}, Invalid, nil},
	} {
		k, out := Classify(tc.in)
		if k != tc.kind || !bytes.Equal(out, tc.out) {
			t.Errorf("%s: Classify = %v, %d bytes; want %v, %d bytes", tc.name, k, len(out), tc.kind, len(tc.out))
		}
	}
}

func FuzzClassify(f *testing.F) {
	f.Add([]byte{0xff})
	f.Add([]byte{0, 0, 0, 0, 1, 2, 3, 4, 5})
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		k, out := Classify(b)
		switch {
		case k == IKE && !bytes.Equal(out, b[4:]):
			t.Fatal("IKE message is not the datagram after the marker")
		case k == ESP && (len(b) < 8 || bytes.Equal(b[:4], []byte{0, 0, 0, 0})):
			t.Fatalf("%x classified as ESP", b)
		}
	})
}
