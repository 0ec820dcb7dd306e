package ike

import (
	"testing"
	"time"
)

// Simultaneous rekeys run in subnet 10.36 (issue 3 follow-up).

// atOnce runs start on an established SA of each daemon while both are
// locked, so neither reads the other's request before sending its own:
// a forced simultaneous rekey.
func atOnce(t *testing.T, a, b *Daemon, start func(d *Daemon, sa *ikeSA) bool) {
	t.Helper()
	a.mu.Lock()
	b.mu.Lock()
	defer a.mu.Unlock()
	defer b.mu.Unlock()
	for _, d := range []*Daemon{a, b} {
		started := false
		for _, sa := range d.sas {
			if sa.st == stEstablished && start(d, sa) {
				started = true
			}
		}
		if !started {
			t.Errorf("a side did not start its rekey")
		}
	}
}

// onePair waits until each side has one IKE SA with one CHILD_SA, the
// two being the same SAs seen from both ends, and none of them old.
func onePair(t *testing.T, a, b *endpoint, oldIKE, oldChild string) (SAStatus, SAStatus) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		sa, sb := a.d.Status(), b.d.Status()
		if len(sa) == 1 && len(sb) == 1 && len(sa[0].Children) == 1 && len(sb[0].Children) == 1 {
			x, y := sa[0], sb[0]
			if x.SPIi == y.SPIi && x.SPIr == y.SPIr && x.SPIi != oldIKE && x.Children[0].InSPI != oldChild &&
				x.Children[0].InSPI == y.Children[0].OutSPI && x.Children[0].OutSPI == y.Children[0].InSPI {
				return x, y
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no single matching SA pair 5 s after the simultaneous rekey:\ninitiator %+v\ngateway %+v", sa, sb)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSimultaneousChildRekeyKeepsOnePairAndEveryByte(t *testing.T) {
	l := newLabOn(t, 36)
	l.startGateway(t)
	ini, err := l.connect(t, l.initCfg)
	if err != nil {
		t.Fatal(err)
	}
	st := ini.d.Status()[0]
	transfer(t, l, 8<<20, func() {
		atOnce(t, ini.d, l.gw.d, func(d *Daemon, sa *ikeSA) bool { ok, _ := d.rekeyChild(sa, sa.children[0]); return ok })
		onePair(t, ini, l.gw, "", st.Children[0].InSPI)
	})
	x, _ := onePair(t, ini, l.gw, "", st.Children[0].InSPI)
	if x.SPIi != st.SPIi {
		t.Fatalf("the IKE SA changed (%s -> %s) in a CHILD_SA rekey", st.SPIi, x.SPIi)
	}
}

func TestSimultaneousIKERekeyKeepsOneSAWithChildAndLease(t *testing.T) {
	l := newLabOn(t, 36)
	l.startGateway(t)
	ini, err := l.connect(t, l.initCfg)
	if err != nil {
		t.Fatal(err)
	}
	st := ini.d.Status()[0]
	atOnce(t, ini.d, l.gw.d, func(d *Daemon, sa *ikeSA) bool { ok, _ := d.rekeyIKE(sa); return ok })
	x, y := onePair(t, ini, l.gw, st.SPIi, "")
	if x.VirtualIP != st.VirtualIP || y.VirtualIP != st.VirtualIP || y.Lease != "lease-1" {
		t.Fatalf("after the simultaneous IKE rekey: initiator vip %s, gateway vip %s lease %q; want %s and lease-1 kept",
			x.VirtualIP, y.VirtualIP, y.Lease, st.VirtualIP)
	}
	// Both ends derived the surviving SA's keys alike: a CHILD_SA rekey
	// (keyed from its SK_d) works during a transfer.
	transfer(t, l, 1<<20, func() {
		if n := ini.d.RekeyChildren(); n != 1 {
			t.Errorf("RekeyChildren on the survivor started %d rekeys, want 1", n)
		}
	})
	onePair(t, ini, l.gw, st.SPIi, x.Children[0].InSPI)
}
