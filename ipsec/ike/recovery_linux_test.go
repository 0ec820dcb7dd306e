package ike

import (
	"context"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"ferry/ipsec/dataplane"
)

// Recovery tests (issue 7 item 4) run in subnet 10.39.

// keepUp keeps ini connected to the lab's gateway until ctx ends, and
// waits for the first SA.
func keepUp(ctx context.Context, t *testing.T, l *lab, ini *endpoint) {
	t.Helper()
	go ini.d.Keep(ctx, Target{Gateway: l.n.gwOuter, RemoteSubnets: []netip.Prefix{l.n.gwSubnet}, VirtualIP: true})
	waitUp(t, ini, "")
}

// rootTraffic sends what a root file system would through the tunnel, a
// datagram every 100 ms from the server to the gateway's inner side,
// until ctx ends.
func rootTraffic(ctx context.Context, t *testing.T, l *lab) {
	t.Helper()
	var c net.Conn
	var err error
	l.p.a.Do(t, func() { c, err = net.Dial("udp4", l.n.gwInner.Addr().String()+":7039") })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		for ctx.Err() == nil {
			c.Write([]byte("nfs"))
			time.Sleep(100 * time.Millisecond)
		}
	}()
}

func requireNFT(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("nft not installed (scripts/ci-deps.sh installs nftables)")
	}
}

// wanDown makes the gateway's side drop everything it receives: both
// ends still send, nothing arrives. wanUp ends it.
func wanDown(t *testing.T, l *lab) {
	l.p.b.Run(t, "table ip outage {\n chain in { type filter hook input priority 0; policy drop; }\n}\n", "nft", "-f", "-")
}

func wanUp(t *testing.T, l *lab) { l.p.b.Run(t, "", "nft", "delete", "table", "ip", "outage") }

// A busy server whose gateway restarted (its DELETE lost, the new
// process knowing no SA) notices within seconds: its ESP goes
// unanswered, it checks liveness at once, the gateway answers
// INVALID_IKE_SPI, the check gives up quickly and Keep reconnects at once.
// Before, it waited for DPD (here 30 s) and a back-off of about 23 s.
func TestInitiatorRecoversFromGatewayRestartWithinSeconds(t *testing.T) {
	l := newLabOn(t, 39)
	l.startGateway(t)
	cfg := l.initCfg
	cfg.DPD, cfg.Backoff, cfg.RetryMax = 30*time.Second, DefaultBackoff(), 3*time.Second
	ini := startEndpoint(t, l.p.a, cfg, netip.Prefix{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	keepUp(ctx, t, l, ini)
	first := ini.d.Status()[0].SPIi
	rootTraffic(ctx, t, l)
	l.p.b.Do(t, func() { setLink(t, "ikev1", false) })
	l.gw.halt()
	l.p.b.Do(t, func() { setLink(t, "ikev1", true) })
	l.startGateway(t)
	back := time.Now()
	const bound = 15 * time.Second // well under DPD + back-off; the goal is 5 s
	stalled := false
	var now SAStatus
	for {
		up := false
		for _, s := range ini.d.Status() {
			if s.State == "established" && s.SPIi != first {
				up, now = true, s
			}
			stalled = stalled || (s.SPIi == first && s.DataPath == "stalled")
		}
		if up {
			break
		}
		if time.Since(back) > bound {
			t.Fatalf("no new SA %v after the gateway came back: %+v", bound, ini.d.Status())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("tunnel back %v after the gateway restarted", time.Since(back).Round(10*time.Millisecond))
	if !stalled {
		t.Error("the old SA's status never said its data path stalled while the gateway ignored its ESP")
	}
	if now.Reconnects != 1 || !strings.Contains(now.LastReconnectReason, "INVALID_IKE_SPI") || now.Since == "" {
		t.Errorf("after the reconnect: reconnects %d, reason %q, since %q; want 1, the INVALID_IKE_SPI hint, and when", now.Reconnects, now.LastReconnectReason, now.Since)
	}
	transfer(t, l, 256<<10, nil)
	for _, s := range ini.d.Status() {
		if s.SPIi == now.SPIi && s.DataPath != "alive" {
			t.Errorf("data path %q right after a transfer; want alive", s.DataPath)
		}
	}
}

// A network outage shorter than the give-up: the liveness check started
// when the ESP went unanswered is resent at most 2 s apart (the keeper's
// schedule), so the first resend after the network is back is answered
// and the same SA carries on.
func TestTunnelResumesWithinSecondsAfterNetworkOutage(t *testing.T) {
	requireNFT(t)
	l := newLabOn(t, 39)
	l.startGateway(t)
	cfg := l.initCfg
	cfg.Backoff, cfg.RetryMax = Backoff{Base: 500 * time.Millisecond, Max: 2 * time.Second, Tries: 8}, 3*time.Second // keeper.Backoff
	ini := startEndpoint(t, l.p.a, cfg, netip.Prefix{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	keepUp(ctx, t, l, ini)
	rootTraffic(ctx, t, l)
	// The WAN loses everything between the two; both ends still send.
	wanDown(t, l)
	stalled := false
	for end := time.Now().Add(6 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		for _, s := range ini.d.Status() {
			stalled = stalled || s.DataPath == "stalled"
		}
	}
	if !stalled {
		t.Error("the status never said the data path stalled during a 6 s outage")
	}
	wanUp(t, l)
	back := time.Now()
	const bound = 10 * time.Second
	for {
		alive := false
		for _, s := range ini.d.Status() {
			alive = alive || (s.State == "established" && s.DataPath == "alive")
		}
		if alive {
			break
		}
		if time.Since(back) > bound {
			t.Fatalf("data path not alive %v after the network came back: %+v", bound, ini.d.Status())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("data path alive %v after the network came back (reconnects: %d)", time.Since(back).Round(10*time.Millisecond), ini.d.TunnelHistory().Reconnects)
	transfer(t, l, 256<<10, nil)
}

// hardOnce gives the first CHILD_SA installed a hard packet limit and no
// soft one: it expires without a rekey, leaving an IKE SA that carries
// nothing.
type hardOnce struct {
	*Userspace
	done *atomic.Bool
}

func (h hardOnce) Install(ctx context.Context, sa dataplane.ChildSA) error {
	if h.done.CompareAndSwap(false, true) {
		sa.Lifetime = dataplane.Lifetime{HardPackets: 20}
	}
	return h.Userspace.Install(ctx, sa)
}

// Keep replaces an IKE SA left without a CHILD_SA by a fresh connection.
func TestKeepReconnectsWhenTheCHILDSAIsGone(t *testing.T) {
	l := newLabOn(t, 39)
	l.startGateway(t)
	var once atomic.Bool
	ini := startWrapped(t, l.p.a, l.initCfg, netip.Prefix{}, 1400, func(u *Userspace) dataplane.DataPlane { return hardOnce{u, &once} })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	keepUp(ctx, t, l, ini)
	first := ini.d.Status()[0].SPIi
	var c net.Conn
	var err error
	l.p.a.Do(t, func() { c, err = net.Dial("udp4", l.n.gwInner.Addr().String()+":7039") })
	if err != nil {
		t.Fatal(err)
	}
	for range 40 { // past the 20-packet hard limit
		c.Write([]byte("expire me"))
	}
	c.Close()
	waitUp(t, ini, first)
	transfer(t, l, 256<<10, nil)
}

// A WAN outage longer than the gateway's DPD: the gateway gives the SA
// up, the server does not yet. When the network is back the server's
// next liveness resend gets INVALID_IKE_SPI, it reconnects at once, and
// the gateway gives its key the same address (item 3: before, the
// address was released with the SA).
func TestOutageLongerThanGatewayDPDKeepsAddress(t *testing.T) {
	requireNFT(t)
	l := newLabOn(t, 39)
	l.gwCfg.DPD = time.Second // gives up about 3.6 s into the outage
	l.startGateway(t)
	cfg := l.initCfg
	cfg.Backoff, cfg.RetryMax = Backoff{Base: 500 * time.Millisecond, Max: 2 * time.Second, Tries: 8}, 3*time.Second // keeper.Backoff
	ini := startEndpoint(t, l.p.a, cfg, netip.Prefix{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	keepUp(ctx, t, l, ini)
	before := ini.d.Status()[0]
	rootTraffic(ctx, t, l)
	wanDown(t, l)
	deadline := time.Now().Add(15 * time.Second)
	for len(l.gw.d.Status()) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("gateway still holds %+v 15 s into the outage; want its DPD to give the SA up", l.gw.d.Status())
		}
		time.Sleep(50 * time.Millisecond)
	}
	wanUp(t, l)
	back := time.Now()
	waitUp(t, ini, before.SPIi)
	t.Logf("tunnel back %v after the network came back", time.Since(back).Round(10*time.Millisecond))
	after := ini.d.Status()
	if len(after) != 1 || after[0].VirtualIP != before.VirtualIP {
		t.Fatalf("after the outage: %+v; want one SA with the address %s again", after, before.VirtualIP)
	}
	if gs := l.gw.d.Status(); len(gs) != 1 || gs[0].VirtualIP != before.VirtualIP {
		t.Fatalf("gateway after the outage: %+v; want one SA with %s", gs, before.VirtualIP)
	}
	transfer(t, l, 256<<10, nil)
}
