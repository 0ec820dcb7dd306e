package borrower_test

import (
	"strings"
	"testing"
	"time"

	"ferry/ipsec/ike"
)

// TestLeaseShowDuringLenderOutageShowsStoredLeaseAndTunnels: with the
// lender down (a WAN outage), lease show still shows the lease as stored,
// says the lender is unreachable, and shows each server's tunnel as the
// gateway reports it: up since when, at which address, or down.
func TestLeaseShowDuringLenderOutageShowsStoredLeaseAndTunnels(t *testing.T) {
	l := newLab(t, buildFerry(t))
	id, agents := l.activeLease(t)
	up := l.tunnelAddr(t, agents[0].pin())
	since := time.Now().Add(-90 * time.Second).UTC().Truncate(time.Second)
	l.gw.set(ike.SAStatus{Role: "responder", State: "established", Pin: agents[0].pin(), VirtualIP: up,
		Since: since.Format(time.RFC3339), DataPath: "alive"})
	l.lenderP.kill()
	out, err := l.ferry("borrower", "lease", "show", "--dir", l.bdir, id)
	if err != nil {
		t.Fatalf("lease show with the lender down: %v", err)
	}
	if m := leaseLine.FindStringSubmatch(out); m == nil || m[1] != id || m[2] != "active" {
		t.Errorf("lease show does not show the stored active lease:\n%s", out)
	}
	if !strings.Contains(out, "lender unreachable") {
		t.Errorf("lease show does not say the lender is unreachable:\n%s", out)
	}
	for _, a := range agents {
		if !strings.Contains(out, a.pin()) {
			t.Errorf("lease show lacks server key %s:\n%s", a.pin(), out)
		}
	}
	if want := "up since " + since.Format(time.RFC3339) + " at " + up + " (data alive)"; !strings.Contains(out, want) {
		t.Errorf("lease show lacks the first server's tunnel %q:\n%s", want, out)
	}
	if strings.Count(out, " down ") != 1 {
		t.Errorf("lease show does not show the second server's tunnel down:\n%s", out)
	}
}
