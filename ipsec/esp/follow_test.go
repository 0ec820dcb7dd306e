package esp

import (
	"net/netip"
	"testing"
)

func TestPeerAddressFollowsNewestAuthenticatedPacket(t *testing.T) {
	r := newRig(t, nil)
	inner := ipv4("10.32.1.5", "10.32.2.7", []byte("moved"))
	first, second, third := r.seal(t, inner), r.seal(t, inner), r.seal(t, inner)
	negotiated := r.saB.Remote
	moved := netip.MustParseAddrPort("10.32.0.9:31000")
	if err := r.b.inputOne(append([]byte(nil), second...), moved); err != nil {
		t.Fatal(err)
	}
	if got, _ := r.b.Remote(r.saB.OutSPI); got != moved {
		t.Fatalf("after an authenticated packet from the new NAT mapping %v, B sends to %v", moved, got)
	}
	// An older packet (delayed in the network) from the old mapping is
	// accepted but must not move the peer back.
	if err := r.b.inputOne(append([]byte(nil), first...), negotiated); err != nil {
		t.Fatal(err)
	}
	if got, _ := r.b.Remote(r.saB.OutSPI); got != moved {
		t.Fatalf("a delayed older packet from %v moved the peer back: B sends to %v", negotiated, got)
	}
	// A forged packet (bad ICV) from elsewhere is dropped and moves nothing.
	forged := append([]byte(nil), third...)
	forged[len(forged)-1] ^= 1
	if err := r.b.inputOne(forged, netip.MustParseAddrPort("10.32.0.66:4500")); err == nil {
		t.Fatal("forged packet accepted")
	}
	if got, _ := r.b.Remote(r.saB.OutSPI); got != moved {
		t.Fatalf("a forged packet moved the peer: B sends to %v", got)
	}
}

func TestSetRemoteMovesOutboundSAAtOnce(t *testing.T) {
	r := newRig(t, nil)
	moved := netip.MustParseAddrPort("10.32.0.9:31000")
	if err := r.b.SetRemote(r.saB.OutSPI, moved); err != nil {
		t.Fatal(err)
	}
	if got, _ := r.b.Remote(r.saB.OutSPI); got != moved {
		t.Fatalf("after SetRemote(%v), B sends to %v", moved, got)
	}
	if err := r.b.SetRemote(0xdead, moved); err == nil {
		t.Error("SetRemote on an unknown SPI succeeded")
	}
	if err := r.b.SetRemote(r.saB.OutSPI, netip.AddrPort{}); err == nil {
		t.Error("SetRemote to no address succeeded")
	}
}
