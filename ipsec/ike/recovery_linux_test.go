package ike

import (
	"context"
	"net"
	"net/netip"
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
	for {
		up := false
		for _, s := range ini.d.Status() {
			up = up || (s.State == "established" && s.SPIi != first)
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
	transfer(t, l, 256<<10, nil)
}
