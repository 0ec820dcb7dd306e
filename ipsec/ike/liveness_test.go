package ike

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"ferry/ipsec/ikev2"
)

// A request for an IKE SA the daemon does not hold is answered with an
// unprotected INVALID_IKE_SPI carrying its SPIs and message ID, at a
// bounded rate; responses are never answered.
func TestUnknownSPIIsAnsweredWithInvalidIKESPIAtABoundedRate(t *testing.T) {
	d := fuzzResponder(t)
	peer := udp(t)
	from := peer.LocalAddr().(*net.UDPAddr).AddrPort()
	req := ikev2.Message{Header: ikev2.Header{SPIi: 0x1111, SPIr: 0x2222, Exchange: ikev2.INFORMATIONAL, MessageID: 7, Flags: ikev2.FlagInitiator},
		Payloads: []ikev2.Payload{&ikev2.Notify{Kind: ikev2.COOKIE}}} // stands for an SK payload we cannot open
	b, err := req.Encode()
	if err != nil {
		t.Fatal(err)
	}
	resp := req
	resp.Header.Flags = ikev2.FlagResponse
	rb, _ := resp.Encode()
	d.receive(rb, from, false) // a response: never answered
	for range 100 {
		d.receive(b, from, false)
	}
	got := 0
	buf := make([]byte, 2048)
	for {
		peer.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		n, _, err := peer.ReadFromUDPAddrPort(buf)
		if err != nil {
			break
		}
		m, err := ikev2.DecodeMessage(buf[:n])
		if err != nil {
			t.Fatalf("answer does not decode: %v", err)
		}
		h := m.Header
		if h.SPIi != 0x1111 || h.SPIr != 0x2222 || h.MessageID != 7 || !h.IsResponse() || h.IsInitiator() || findNotify(m.Payloads, ikev2.INVALID_IKE_SPI) == nil {
			t.Fatalf("answer %+v %v; want a response with the request's SPIs and message ID and INVALID_IKE_SPI", h, m.Payloads)
		}
		got++
	}
	if got == 0 || got > sourceBurst+1 {
		t.Fatalf("%d INVALID_IKE_SPI answers to 100 requests sent at once from one address; want 1 to %d", got, sourceBurst+1)
	}
}

// One sender flooding requests for unknown SPIs does not use up the
// answers another one (a server whose gateway restarted) needs.
func TestInvalidIKESPIAnswersAreShared(t *testing.T) {
	var l invalidSPILimit
	now := time.Now()
	flood, server := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	for range 1000 {
		l.take(flood, now)
	}
	if !l.take(server, now) {
		t.Fatal("a flood from one address starved another of INVALID_IKE_SPI answers")
	}
	n := 0
	for i := range 1000 {
		if l.take(netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)}), now) {
			n++
		}
	}
	if n > invalidSPIBurst {
		t.Fatalf("%d answers to 1000 addresses at once; want the global burst %d at most", n, invalidSPIBurst)
	}
}

// INVALID_IKE_SPI is unauthenticated (RFC 7296 section 2.21.4): a forged
// one answering our liveness check must not take a working tunnel down.
func TestForgedInvalidIKESPIDoesNotTearDownWorkingTunnel(t *testing.T) {
	lb := newLoopback(t, nil)
	ini, _ := lb.initiator(t, "lease-spoofed", true)
	if err := lb.connect(ini); err != nil {
		t.Fatal(err)
	}
	ini.mu.Lock()
	var sa *ikeSA
	for _, s := range ini.sas {
		sa = s
	}
	spi := sa.localSPI()
	// A liveness check, and a forged INVALID_IKE_SPI for it that wins
	// the race against the gateway's real answer.
	if err := ini.request(sa, ikev2.INFORMATIONAL, nil, func(*ikev2.Message) {}, nil); err != nil {
		ini.mu.Unlock()
		t.Fatal(err)
	}
	check := sa.pending.id
	forged := ikev2.Message{Header: ikev2.Header{SPIi: sa.spii, SPIr: sa.spir, Exchange: ikev2.INFORMATIONAL, MessageID: check, Flags: ikev2.FlagResponse},
		Payloads: []ikev2.Payload{&ikev2.Notify{Kind: ikev2.INVALID_IKE_SPI}}}
	b, _ := forged.Encode()
	h, _ := ikev2.DecodeHeader(b)
	ini.unprotected(sa, b, h)
	hinted := sa.pending != nil && sa.pending.hinted
	ini.mu.Unlock()
	if !hinted {
		t.Fatal("the INVALID_IKE_SPI for the pending liveness check was not taken as a hint")
	}
	// The check ends with the gateway's answer or, were that ignored,
	// with the give-up after hintSends (which removes the SA): wait for
	// its end rather than for a time, the tunnel up all along.
	deadline := time.Now().Add(time.Duration(hintSends)*hintDelay + 10*time.Second)
	for {
		ini.mu.Lock()
		ended := sa.pending == nil || sa.pending.id != check
		kept := ini.sas[spi] != nil && ini.sas[spi].st == stEstablished
		ini.mu.Unlock()
		if !kept {
			t.Fatal("a forged INVALID_IKE_SPI took the tunnel down although the gateway answered the liveness check")
		}
		if ended {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the hinted liveness check %d neither answered nor given up after %v", check, time.Duration(hintSends)*hintDelay+10*time.Second)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := len(lb.gw.Status()); n != 1 {
		t.Fatalf("gateway holds %d SAs; want the one tunnel", n)
	}
}
