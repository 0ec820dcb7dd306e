package netboot

import (
	"encoding/base64"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func testSealer(t testing.TB) (*sealer, *clock) {
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	s, err := newSealer(c.now)
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

func TestSealedTokenRoundTrips(t *testing.T) {
	s, c := testSealer(t)
	for _, addr := range []netip.Addr{{}, netip.MustParseAddr("10.42.0.100")} {
		in := &ticket{Kind: kindKernel, Expires: c.t.Add(time.Minute), Boot: [16]byte{1, 2, 3}, Addr: addr, MAC: macKnown}
		out, err := s.open(s.seal(in), kindKernel)
		if err != nil {
			t.Fatal(err)
		}
		if out.Kind != in.Kind || out.Boot != in.Boot || out.MAC.String() != in.MAC.String() || !out.Expires.Equal(in.Expires) || out.Addr != addr {
			t.Fatalf("opened %+v, sealed %+v", out, in)
		}
	}
}

func TestSealedTokenRefusesEveryAlteredByte(t *testing.T) {
	s, c := testSealer(t)
	tok := s.seal(&ticket{Kind: kindScript, Expires: c.t.Add(time.Minute), MAC: macKnown})
	raw, _ := base64.RawURLEncoding.DecodeString(tok)
	for i := range raw {
		bad := append([]byte(nil), raw...)
		bad[i] ^= 0x01
		if _, err := s.open(base64.RawURLEncoding.EncodeToString(bad), kindScript); err == nil {
			t.Fatalf("byte %d flipped: token accepted", i)
		}
	}
}

func TestSealedTokenFromAnotherProcessRefused(t *testing.T) {
	a, c := testSealer(t)
	b, _ := testSealer(t)
	tok := a.seal(&ticket{Kind: kindScript, Expires: c.t.Add(time.Minute), MAC: macKnown})
	if _, err := b.open(tok, kindScript); err == nil || !strings.Contains(err.Error(), "forged") {
		t.Fatalf("other key: err = %v, want forged", err)
	}
}

func TestSealedTokenExpires(t *testing.T) {
	s, c := testSealer(t)
	tok := s.seal(&ticket{Kind: kindScript, Expires: c.t.Add(time.Minute), MAC: macKnown})
	c.t = c.t.Add(time.Minute)
	if _, err := s.open(tok, kindScript); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("err = %v, want expired", err)
	}
}

func TestSealedScriptTokenDoesNotOpenFiles(t *testing.T) {
	s, c := testSealer(t)
	tok := s.seal(&ticket{Kind: kindScript, Expires: c.t.Add(time.Minute), MAC: macKnown})
	if _, err := s.open(tok, kindKernel, kindInitrd); err == nil {
		t.Fatal("script token opened a file URL")
	}
}

func TestSealedTokenRefusesOversizedText(t *testing.T) {
	s, _ := testSealer(t)
	if _, err := s.open(strings.Repeat("A", maxSealed+1), kindScript); err == nil {
		t.Fatal("oversized token accepted")
	}
}

func FuzzOpenSealed(f *testing.F) {
	s, c := testSealer(f)
	f.Add(s.seal(&ticket{Kind: kindScript, Expires: c.t.Add(time.Hour), MAC: macKnown}))
	f.Add("")
	f.Add("AAAA")
	f.Fuzz(func(t *testing.T, tok string) {
		tk, err := s.open(tok, kindScript, kindKernel, kindInitrd)
		if err == nil && (len(tk.MAC) == 0 || len(tk.MAC) > maxMAC) {
			t.Fatalf("accepted ticket with MAC length %d", len(tk.MAC))
		}
	})
}

func FuzzUnmarshalTicket(f *testing.F) {
	f.Add((&ticket{Kind: kindInitrd, MAC: macKnown}).marshal())
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		tk, err := unmarshalTicket(b)
		if err != nil {
			return
		}
		if string(tk.marshal()) != string(b) {
			t.Fatalf("round trip changed %x into %x", b, tk.marshal())
		}
	})
}
