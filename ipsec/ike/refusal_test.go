package ike

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"ferry/ipsec/authz"
	"ferry/ipsec/dataplane/dataplanetest"
	"ferry/ipsec/ikev2"
	"ferry/pki"
)

// logCount counts log records by message.
type logCount struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *logCount) Enabled(context.Context, slog.Level) bool { return true }
func (c *logCount) Handle(_ context.Context, r slog.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r.Level >= slog.LevelInfo {
		c.n[r.Message]++
	}
	return nil
}
func (c *logCount) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c *logCount) WithGroup(string) slog.Handler      { return c }
func (c *logCount) get(msg string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[msg]
}

// lossyRelay stands between an initiator and a gateway on loopback, one
// relay socket pair per IKE port, and drops the first drop IKE_AUTH
// responses; it keeps every IKE_AUTH request and response it saw. With
// remap, each drop also moves the relay to a new source port towards the
// gateway, as a NAT that lost its mapping would.
type lossyRelay struct {
	mu        sync.Mutex
	drop      int
	remap     bool
	reqs      int
	responses [][]byte
}

func udp(t *testing.T) *net.UDPConn {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Skip(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func port(c *net.UDPConn) uint16 { return c.LocalAddr().(*net.UDPAddr).AddrPort().Port() }

// forward relays front (the initiator's side) to the gateway at gw
// through a back socket, and the answers back.
func (r *lossyRelay) forward(t *testing.T, gw netip.AddrPort, nat bool) (front *net.UDPConn) {
	front = udp(t)
	var peer netip.AddrPort
	var back atomic.Pointer[net.UDPConn]
	var mu sync.Mutex
	var open func()
	open = func() {
		b := udp(t)
		if old := back.Swap(b); old != nil {
			old.Close() // the NAT forgot the old mapping
		}
		go func() {
			buf := make([]byte, 65536)
			for {
				n, _, err := b.ReadFromUDPAddrPort(buf)
				if err != nil {
					return
				}
				if r.note(buf[:n], nat) {
					if r.remap {
						open()
					}
					continue
				}
				mu.Lock()
				to := peer
				mu.Unlock()
				front.WriteToUDPAddrPort(buf[:n], to)
			}
		}()
	}
	open()
	go func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := front.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			mu.Lock()
			peer = from
			mu.Unlock()
			r.note(buf[:n], nat)
			back.Load().WriteToUDPAddrPort(buf[:n], gw)
		}
	}()
	return front
}

// note records IKE_AUTH messages and says whether to drop this one.
func (r *lossyRelay) note(b []byte, nat bool) bool {
	if nat {
		if len(b) < 4 || !bytes.Equal(b[:4], []byte{0, 0, 0, 0}) {
			return false
		}
		b = b[4:]
	}
	h, err := ikev2.DecodeHeader(b)
	if err != nil || h.Exchange != ikev2.IKE_AUTH {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !h.IsResponse() {
		r.reqs++
		return false
	}
	r.responses = append(r.responses, append([]byte(nil), b...))
	if r.drop > 0 {
		r.drop--
		return true
	}
	return false
}

// refusingPair runs a gateway whose allow list is empty and an initiator
// reaching it through relay, both on loopback with null data planes.
func refusingPair(t *testing.T, relay *lossyRelay, gwLog *slog.Logger, hold time.Duration) (gw, ini *Daemon) {
	ca, err := pki.NewCA("refusal CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(cn string) ([]*x509.Certificate, crypto.Signer) {
		k, c, err := ca.Issue(pki.Identity{CommonName: cn}, pki.ECDSAP256, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return []*x509.Certificate{c}, k
	}
	lo := netip.MustParseAddr("127.0.0.1")
	fast := Backoff{Base: 100 * time.Millisecond, Max: 200 * time.Millisecond, Tries: 4}
	gc, gk := issue("gw")
	gcfg := Config{Local: lo, Certs: gc, Key: gk, CAs: []*x509.Certificate{ca.Cert}, Authorizer: authz.New(gwLog, nil),
		LocalSubnets: []netip.Prefix{netip.MustParsePrefix("10.36.2.0/24")}, Log: gwLog, Backoff: fast, RefusalHold: hold,
		DataPlane: dataplanetest.NewNull()}
	ic, ik := issue("lease-x")
	icfg := Config{Local: lo, Certs: ic, Key: ik, CAs: []*x509.Certificate{ca.Cert}, Log: testLog(t, "init"), Backoff: fast,
		DataPlane: dataplanetest.NewNull()}
	gc500, gc4500 := udp(t), udp(t)
	gw = runDaemon(t, gcfg, gc500, gc4500)
	f500 := relay.forward(t, netip.AddrPortFrom(lo, port(gc500)), false)
	f4500 := relay.forward(t, netip.AddrPortFrom(lo, port(gc4500)), true)
	icfg.Port, icfg.NATPort = port(f500), port(f4500) // where the initiator sends
	ini = runDaemon(t, icfg, udp(t), udp(t))
	return gw, ini
}

func runDaemon(t *testing.T, cfg Config, conn, natc *net.UDPConn) *Daemon {
	if err := cfg.setDefaults(); err != nil {
		t.Fatal(err)
	}
	d := newDaemon(cfg, conn, natc)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return d
}

func TestRetransmittedRefusedAuthGetsSameRefusalLoggedOnce(t *testing.T) {
	logs := &logCount{n: map[string]int{}}
	relay := &lossyRelay{drop: 2} // the first two refusals are lost
	gw, ini := refusingPair(t, relay, slog.New(logs), time.Hour)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	err := ini.Connect(ctx, Target{Gateway: netip.MustParseAddr("127.0.0.1")})
	if err == nil || !strings.Contains(err.Error(), "AUTHENTICATION_FAILED") {
		t.Fatalf("connect whose first two refusals were lost: %v; want the retransmission answered with AUTHENTICATION_FAILED", err)
	}
	relay.mu.Lock()
	reqs, resps := relay.reqs, relay.responses
	relay.mu.Unlock()
	if reqs < 3 || len(resps) != reqs {
		t.Fatalf("%d IKE_AUTH requests got %d responses; want every one of at least 3 answered", reqs, len(resps))
	}
	for i, r := range resps[1:] {
		if !bytes.Equal(r, resps[0]) {
			t.Fatalf("response to retransmission %d differs from the first refusal", i+1)
		}
	}
	if n := logs.get("ike: refused peer"); n != 1 {
		t.Fatalf("the refusal was logged %d times for %d retransmitted requests; want once", n, reqs)
	}
	if n := len(gw.Status()); n != 0 {
		t.Fatalf("gateway status lists %d SAs after a refusal; want none", n)
	}
}

func TestRefusedAuthIsForgottenAfterHold(t *testing.T) {
	relay := &lossyRelay{}
	gw, ini := refusingPair(t, relay, testLog(t, "gw"), 200*time.Millisecond)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := ini.Connect(ctx, Target{Gateway: netip.MustParseAddr("127.0.0.1")}); err == nil {
		t.Fatal("connect without a listed key succeeded")
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		gw.mu.Lock()
		n, held := len(gw.sas), gw.refused
		gw.mu.Unlock()
		if n == 0 && held == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway still holds %d SAs (%d refused) 3 s after a refusal held for 200 ms", n, held)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRefusedAuthHoldIsBounded(t *testing.T) {
	d := fuzzResponder(t)
	d.cfg.HalfOpenMax = 2
	for i := range 5 {
		sa := &ikeSA{spir: uint64(i + 1), st: stHalfOpen}
		d.sas[sa.spir] = sa
		d.holdRefused(sa, "test")
	}
	if len(d.sas) != 2 || d.refused != 2 {
		t.Fatalf("%d SAs (%d refused) kept after 5 refusals; want the bound 2", len(d.sas), d.refused)
	}
}

func TestRetransmittedRefusedInitIsLoggedOnce(t *testing.T) {
	logs := &logCount{n: map[string]int{}}
	d := fuzzResponder(t)
	d.log = slog.New(logs)
	dh, _ := ikev2.NewDH(ikev2.DH_ECP256, rand.Reader)
	m := ikev2.Message{Header: ikev2.Header{SPIi: 0x36, Exchange: ikev2.IKE_SA_INIT, Flags: ikev2.FlagInitiator},
		Payloads: []ikev2.Payload{&ikev2.SA{Proposals: []ikev2.Proposal{proposal(ikev2.DefaultIKEPolicy(), nil, true)}}, dh.KE()}} // no Nonce
	b, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	for range 4 {
		d.receive(b, netip.MustParseAddrPort("127.0.0.1:9"), false)
	}
	if n := logs.get("ike: refused IKE_SA_INIT"); n != 1 {
		t.Fatalf("an IKE_SA_INIT without Nonce sent 4 times was logged as refused %d times; want once", n)
	}
}

func TestRetransmissionFromNewNATMappingIsAnsweredThere(t *testing.T) {
	relay := &lossyRelay{drop: 1, remap: true} // the refusal is lost, and the NAT mapping with it
	_, ini := refusingPair(t, relay, testLog(t, "gw"), time.Hour)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	err := ini.Connect(ctx, Target{Gateway: netip.MustParseAddr("127.0.0.1")})
	if err == nil || !strings.Contains(err.Error(), "AUTHENTICATION_FAILED") {
		t.Fatalf("connect whose retransmission came through a new NAT mapping: %v; want the answer sent to the new mapping", err)
	}
}
