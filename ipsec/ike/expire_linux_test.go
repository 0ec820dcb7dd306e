package ike

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"ferry/ipsec/dataplane"
)

// Expiry tests run in subnet 10.36 (issue 3 follow-up).

func TestByteLifetimeRekeysBothEndsDuringTransfer(t *testing.T) {
	l := newLabOn(t, 36)
	l.gwCfg.ChildBytes = 8 << 20
	l.startGateway(t)
	cfg := l.initCfg
	cfg.ChildBytes = 8 << 20
	ini, err := l.connect(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	first := ini.d.Status()[0].Children[0].InSPI
	seen := map[string]bool{}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // record the CHILD_SAs the transfer went through
		defer close(done)
		for {
			for _, s := range ini.d.Status() {
				for _, c := range s.Children {
					seen[c.InSPI] = true
				}
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	transfer(t, l, 28<<20, nil) // three and a half lifetimes of 8 MiB
	close(stop)
	<-done
	onePair(t, ini, l.gw, "", first)
	if len(seen) < 3 {
		t.Fatalf("28 MiB through CHILD_SAs that expire after 8 MiB went through %d of them; want the soft expiries to have rekeyed at least twice", len(seen))
	}
}

// hardAfter gives every CHILD_SA a hard packet limit and no soft one, so
// the data plane's hard expiry is what ends it.
type hardAfter struct {
	*Userspace
	packets uint64
}

func (h hardAfter) Install(ctx context.Context, sa dataplane.ChildSA) error {
	sa.Lifetime = dataplane.Lifetime{HardPackets: h.packets}
	return h.Userspace.Install(ctx, sa)
}

func TestHardExpiryDeletesChildOnBothEnds(t *testing.T) {
	l := newLabOn(t, 36)
	l.startGateway(t)
	ini := startWrapped(t, l.p.a, l.initCfg, netip.Prefix{}, 1400, func(u *Userspace) dataplane.DataPlane { return hardAfter{u, 20} })
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := ini.d.Connect(ctx, Target{Gateway: l.n.gwOuter, RemoteSubnets: []netip.Prefix{l.n.gwSubnet}, VirtualIP: true}); err != nil {
		t.Fatal(err)
	}
	var c net.Conn
	var err error
	l.p.a.Do(t, func() { c, err = net.Dial("udp4", l.n.gwInner.Addr().String()+":7036") })
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for range 40 { // past the 20-packet hard limit
		c.Write([]byte("expire me"))
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		is, gs := ini.d.Status(), l.gw.d.Status()
		if len(is) == 1 && len(gs) == 1 && len(is[0].Children) == 0 && len(gs[0].Children) == 0 {
			return // both ends dropped the CHILD_SA, the IKE SA stays
		}
		if time.Now().After(deadline) {
			t.Fatalf("5 s after the hard expiry: initiator %+v\ngateway %+v; want the CHILD_SA gone at both ends, the IKE SA kept", is, gs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
