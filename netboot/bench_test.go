package netboot

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"
)

func BenchmarkDHCPDiscoverToOffer(b *testing.B) {
	s := newTestServer(b, ModeDHCP, testPolicy(b), nil)
	req := discover(b, ipxe(macKnown))
	for b.Loop() {
		if _, err := s.reply(bg, req, portDHCP); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkScriptRequest(b *testing.B) {
	s := newTestServer(b, ModeDHCP, testPolicy(b), nil)
	path := strings.TrimPrefix(s.scriptURL(macKnown, netip.Addr{}), s.cfg.HTTPBase)
	h := s.Handler()
	for b.Loop() {
		if code, _ := fetch(b, h, path); code != http.StatusOK {
			b.Fatal(code)
		}
	}
}

func BenchmarkOpenSealed(b *testing.B) {
	s, c := testSealer(b)
	tok := s.seal(&ticket{Kind: kindKernel, Expires: c.t.Add(1 << 40), MAC: macKnown})
	for b.Loop() {
		if _, err := s.open(tok, kindKernel); err != nil {
			b.Fatal(err)
		}
	}
}
