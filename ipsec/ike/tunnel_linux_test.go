package ike

import (
	"context"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"ferry/internal/netnstest"
	"ferry/ipsec/ikev2"
)

// transfer sends n pseudo-random bytes from the initiator's namespace to
// a listener in the gateway's, over the tunnel, and checks them.
func transfer(t *testing.T, l *lab, n int, during func()) {
	t.Helper()
	sendThrough(t, l.p.a, l.p.b, l.n.gwInner.Addr(), 7033, n, during)
}

// sendThrough sends n pseudo-random bytes over TCP from namespace from to a
// listener on dst:port in namespace to, calls during (if any) halfway, and
// checks that every byte arrived unchanged.
func sendThrough(t *testing.T, from, to *netnstest.NS, dst netip.Addr, port, n int, during func()) {
	t.Helper()
	addr := netip.AddrPortFrom(dst, uint16(port)).String()
	var ln net.Listener
	var err error
	to.Do(t, func() { ln, err = net.Listen("tcp4", addr) })
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan [32]byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- [32]byte{}
			return
		}
		defer c.Close()
		h := sha256.New()
		io.Copy(h, c)
		got <- [32]byte(h.Sum(nil))
	}()
	var c net.Conn
	from.Do(t, func() { c, err = net.DialTimeout("tcp4", addr, 5*time.Second) })
	if err != nil {
		t.Fatalf("dial %s through the tunnel: %v", addr, err)
	}
	data := make([]byte, n)
	rng := rand.NewChaCha8([32]byte{33})
	rng.Read(data)
	c.SetDeadline(time.Now().Add(30 * time.Second))
	half := n / 2
	if _, err := c.Write(data[:half]); err != nil {
		t.Fatal(err)
	}
	if during != nil {
		during()
	}
	if _, err := c.Write(data[half:]); err != nil {
		t.Fatal(err)
	}
	c.Close()
	select {
	case h := <-got:
		if h != sha256.Sum256(data) {
			t.Fatalf("%d bytes through the tunnel arrived changed or short", n)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("transfer did not finish")
	}
}

func TestTunnelCarriesTCPByteForByte(t *testing.T) {
	l := newLab(t)
	l.gwCfg.DNS = []netip.Addr{netip.MustParseAddr("10.33.2.53")}
	l.startGateway(t)
	ini, err := l.connect(t, l.initCfg)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	st := ini.d.Status()
	if len(st) != 1 || st[0].State != "established" || !strings.HasPrefix(st[0].VirtualIP, "10.33.200.") || len(st[0].Children) != 1 ||
		len(st[0].DNS) != 1 || st[0].DNS[0].String() != "10.33.2.53" {
		t.Fatalf("initiator status %+v", st)
	}
	gst := l.gw.d.Status()
	if len(gst) != 1 || gst[0].Lease != "lease-1" || gst[0].Pin != l.initPin {
		t.Fatalf("gateway status %+v", gst)
	}
	transfer(t, l, 4<<20, nil)
}

func TestGatewayRefusesKeyNotOnAllowList(t *testing.T) {
	l := newLab(t)
	l.allow.Remove(t.Context(), l.initPin)
	l.startGateway(t)
	_, err := l.connect(t, l.initCfg)
	if err == nil || !strings.Contains(err.Error(), "AUTHENTICATION_FAILED") {
		t.Fatalf("connect with an unlisted key: %v, want AUTHENTICATION_FAILED", err)
	}
	if n := len(l.gw.d.Status()); n != 0 {
		t.Errorf("gateway keeps %d SAs after refusing", n)
	}
}

func TestGatewayRefusesCertFromOtherCA(t *testing.T) {
	l := newLab(t)
	other := newCreds(t)
	k, c, pin := other.issue(t, "lease-1", time.Hour)
	l.allow.Add(authzEntry(pin))
	l.startGateway(t)
	cfg := l.initCfg
	cfg.Key, cfg.Certs[0] = k, c
	cfg.CAs = append(cfg.CAs, other.ca.Cert)
	if _, err := l.connect(t, cfg); err == nil || !strings.Contains(err.Error(), "AUTHENTICATION_FAILED") {
		t.Fatalf("connect with another CA's certificate: %v, want AUTHENTICATION_FAILED", err)
	}
}

func TestGatewayRefusesExpiredCert(t *testing.T) {
	l := newLab(t)
	l.startGateway(t)
	cfg := l.initCfg
	k, c, pin := l.creds.issue(t, "lease-1", -30*time.Minute) // expired half an hour ago: beyond the 5 min skew
	l.allow.Add(authzEntry(pin))
	cfg.Key, cfg.Certs[0] = k, c
	if _, err := l.connect(t, cfg); err == nil || !strings.Contains(err.Error(), "AUTHENTICATION_FAILED") {
		t.Fatalf("connect with an expired certificate: %v, want AUTHENTICATION_FAILED", err)
	}
}

func TestRemovingKeyTearsDownTunnel(t *testing.T) {
	l := newLab(t)
	l.startGateway(t)
	ini, err := l.connect(t, l.initCfg)
	if err != nil {
		t.Fatal(err)
	}
	l.allow.Remove(t.Context(), l.initPin)
	if n := len(l.gw.d.Status()); n != 0 {
		t.Fatalf("gateway keeps %d SAs after the key was removed", n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(ini.d.Status()) != 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := len(ini.d.Status()); n != 0 {
		t.Fatalf("initiator keeps %d SAs after the gateway deleted them", n)
	}
}

func TestInitiatorRecoversAfterGatewayCrashAndRestart(t *testing.T) {
	l := newLab(t)
	l.startGateway(t)
	cfg := l.initCfg
	cfg.DPD = 300 * time.Millisecond
	ini := startEndpoint(t, l.p.a, cfg, netip.Prefix{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	target := Target{Gateway: gwOuter, RemoteSubnets: []netip.Prefix{gwSubnet}, VirtualIP: true}
	go ini.d.Keep(ctx, target)
	waitUp(t, ini, "")
	first := ini.d.Status()[0].SPIi
	// Crash: the gateway's link goes down first, so its DELETE is lost and
	// only the liveness check can notice.
	l.p.b.Do(t, func() { setLink(t, "ikev1", false) })
	l.gw.halt()
	l.p.b.Do(t, func() { setLink(t, "ikev1", true) })
	l.startGateway(t)
	waitUp(t, ini, first)
	transfer(t, l, 1<<20, nil)
}

// waitUp waits for an established SA whose SPIi differs from old.
func waitUp(t *testing.T, e *endpoint, old string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for _, s := range e.d.Status() {
			if s.State == "established" && s.SPIi != old {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no new SA within 20 s: %+v", e.d.Status())
}

func TestChildRekeyDuringTransferLosesNothing(t *testing.T) {
	l := newLab(t)
	l.startGateway(t)
	ini, err := l.connect(t, l.initCfg)
	if err != nil {
		t.Fatal(err)
	}
	old := ini.d.Status()[0].Children[0].InSPI
	transfer(t, l, 8<<20, func() {
		if n := ini.d.RekeyChildren(); n != 1 {
			t.Errorf("RekeyChildren started %d rekeys, want 1", n)
		}
		waitChildReplaced(t, ini, old)
	})
	if g := l.gw.d.Status(); len(g) != 1 || len(g[0].Children) != 1 || g[0].Children[0].OutSPI == old {
		t.Fatalf("gateway after rekey: %+v", g)
	}
}

func TestInitiatorRetriesWithCookieUnderLoad(t *testing.T) {
	l := newLab(t)
	l.startGateway(t)
	l.gw.d.mu.Lock()
	l.gw.d.cfg.CookieThreshold = 0 // every IKE_SA_INIT counts as "under load"
	l.gw.d.mu.Unlock()
	ini, err := l.connect(t, l.initCfg)
	if err != nil {
		t.Fatalf("connect through a cookie demand: %v", err)
	}
	if st := ini.d.Status(); len(st) != 1 || st[0].State != "established" {
		t.Fatalf("status %+v", st)
	}
}

func TestInitiatorRetriesWithGroupTheGatewayAsks(t *testing.T) {
	l := newLab(t)
	l.gwCfg.IKEPolicy = ikev2.DefaultIKEPolicy()
	l.gwCfg.IKEPolicy.DH = []uint16{ikev2.DH_ECP256}
	l.startGateway(t)
	cfg := l.initCfg
	cfg.IKEPolicy = ikev2.DefaultIKEPolicy()
	cfg.IKEPolicy.DH = []uint16{ikev2.DH_CURVE25519, ikev2.DH_ECP256}
	ini, err := l.connect(t, cfg)
	if err != nil {
		t.Fatalf("connect after INVALID_KE_PAYLOAD: %v", err)
	}
	if st := ini.d.Status(); len(st) != 1 || !strings.HasSuffix(st[0].Suite, "ecp256") {
		t.Fatalf("status %+v, want an ecp256 suite", st)
	}
}

func TestGatewayRefusesWeakProposal(t *testing.T) {
	l := newLab(t)
	l.startGateway(t)
	cfg := l.initCfg
	cfg.IKEPolicy = ikev2.DefaultIKEPolicy()
	cfg.IKEPolicy.Encr = []ikev2.Transform{{Type: ikev2.TransformENCR, ID: ikev2.ENCR_AES_GCM_16, KeyLength: 128}}
	if _, err := l.connect(t, cfg); err == nil || !strings.Contains(err.Error(), "NO_PROPOSAL_CHOSEN") {
		t.Fatalf("connect offering only aes128gcm16: %v, want NO_PROPOSAL_CHOSEN", err)
	}
}

func TestIKERekeyKeepsTunnel(t *testing.T) {
	l := newLab(t)
	l.startGateway(t)
	cfg := l.initCfg
	cfg.IKELifetime = 300 * time.Millisecond
	ini, err := l.connect(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	old := ini.d.Status()[0].SPIi
	waitUp(t, ini, old) // the lifetime triggers the rekey
	deadline := time.Now().Add(5 * time.Second)
	for (len(ini.d.Status()) != 1 || len(l.gw.d.Status()) != 1) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	st, gst := ini.d.Status(), l.gw.d.Status()
	if len(st) != 1 || len(gst) != 1 || len(st[0].Children) != 1 || len(gst[0].Children) != 1 || gst[0].Lease != "lease-1" {
		t.Fatalf("after IKE rekey: initiator %+v, gateway %+v", st, gst)
	}
	// The CHILD_SA moved to the new IKE SA; a CHILD rekey uses its SK_d.
	transfer(t, l, 1<<20, func() { ini.d.RekeyChildren() })
}

func TestHandshakeInFragmentsWhenMessagesExceedTheSize(t *testing.T) {
	l := newLab(t)
	l.gwCfg.FragmentSize = 400 // certificates alone are bigger: IKE_AUTH goes in SKF fragments both ways
	l.startGateway(t)
	cfg := l.initCfg
	cfg.FragmentSize = 400
	if _, err := l.connect(t, cfg); err != nil {
		t.Fatalf("connect with 400-byte fragments: %v", err)
	}
	transfer(t, l, 1<<20, nil)
}

// waitChildReplaced waits up to 5 s for ini's one CHILD_SA to be another
// than the one with inbound SPI old (a rekey), and fails t if it is not.
func waitChildReplaced(t *testing.T, ini *endpoint, old string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		st := ini.d.Status()
		if len(st) == 1 && len(st[0].Children) == 1 && st[0].Children[0].InSPI != old {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Errorf("CHILD_SA not replaced within 5 s: %+v", ini.d.Status())
}
