package ike

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// Recovery tests (issue 7 item 4) run in subnet 10.39.

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
	go ini.d.Keep(ctx, Target{Gateway: l.n.gwOuter, RemoteSubnets: []netip.Prefix{l.n.gwSubnet}, VirtualIP: true})
	waitUp(t, ini, "")
	first := ini.d.Status()[0].SPIi
	var c net.Conn
	var err error
	l.p.a.Do(t, func() { c, err = net.Dial("udp4", l.n.gwInner.Addr().String()+":7039") })
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go func() { // the root file system's traffic
		for ctx.Err() == nil {
			c.Write([]byte("nfs"))
			time.Sleep(100 * time.Millisecond)
		}
	}()
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
