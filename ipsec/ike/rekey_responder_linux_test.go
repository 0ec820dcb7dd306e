package ike

import (
	"testing"
)

// A CHILD_SA rekey started by either end during a transfer over the
// user-space plane: TCP hides losses, so the planes' counters are what
// is checked. The rekey's responder must not send on the new SA before
// the initiator has installed it (dataplane.ChildSA.Deferred), and nobody
// may send on an SA the other end has removed.
func TestChildRekeyByEitherEndDropsNoESP(t *testing.T) {
	for _, by := range []string{"lent server", "gateway", "both at once"} {
		t.Run(by, func(t *testing.T) {
			l := newLabOn(t, 37)
			l.startGateway(t)
			ini, err := l.connect(t, l.initCfg)
			if err != nil {
				t.Fatal(err)
			}
			starter := ini
			if by == "gateway" {
				starter = l.gw
			}
			old := ini.d.Status()[0].Children[0].InSPI
			transfer(t, l, 8<<20, func() {
				if by == "both at once" {
					atOnce(t, ini.d, l.gw.d, func(d *Daemon, sa *ikeSA) bool { ok, _ := d.rekeyChild(sa, sa.children[0]); return ok })
					onePair(t, ini, l.gw, "", old)
					return
				}
				if n := starter.d.RekeyChildren(); n != 1 {
					t.Errorf("%s's RekeyChildren started %d rekeys, want 1", by, n)
				}
				waitChildReplaced(t, ini, old)
			})
			if g := l.gw.d.Status(); len(g) != 1 || len(g[0].Children) != 1 || g[0].Children[0].OutSPI == old {
				t.Fatalf("gateway after the rekey: %+v", g)
			}
			if a, b := ini.plane.Stats().DropNoSA, l.gw.plane.Stats().DropNoSA; a != 0 || b != 0 {
				t.Fatalf("ESP for SAs the receiver did not hold: dropped %d at the lent server, %d at the gateway", a, b)
			}
		})
	}
}
