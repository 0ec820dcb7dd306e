package ike

import (
	"encoding/binary"
	"net/netip"
	"testing"
)

// initFrom is seedInit with another initiator SPI.
func initFrom(seed []byte, spi uint64) []byte {
	b := append([]byte(nil), seed...)
	binary.BigEndian.PutUint64(b, spi)
	return b
}

func TestResponderBoundsHalfOpenSAs(t *testing.T) {
	d := fuzzResponder(t)
	d.cfg.HalfOpenMax, d.cfg.CookieThreshold = 10, 1000
	seed := seedInit(t)
	from := netip.MustParseAddrPort("127.0.0.1:9")
	for i := range 100 {
		d.receive(initFrom(seed, uint64(i+1)), from, false)
	}
	if n := len(d.halfOpen); n != 10 {
		t.Fatalf("%d half-open SAs after 100 requests, want the limit 10", n)
	}
}

func TestResponderKeepsNoStateWhenDemandingCookies(t *testing.T) {
	d := fuzzResponder(t)
	d.cfg.CookieThreshold = 0
	seed := seedInit(t)
	for i := range 20 {
		d.receive(initFrom(seed, uint64(i+1)), netip.MustParseAddrPort("127.0.0.1:9"), false)
	}
	if n := len(d.sas); n != 0 {
		t.Fatalf("%d SAs kept while demanding cookies, want none", n)
	}
}

func TestRetransmittedInitGetsSameAnswer(t *testing.T) {
	d := fuzzResponder(t)
	seed := seedInit(t)
	from := netip.MustParseAddrPort("127.0.0.1:9")
	d.receive(seed, from, false)
	d.receive(seed, from, false)
	if n := len(d.sas); n != 1 {
		t.Fatalf("%d SAs after a retransmitted IKE_SA_INIT, want 1", n)
	}
}
