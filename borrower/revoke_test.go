package borrower_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ferry/api"
	"ferry/lender"
)

// TestLenderSideReturnTakesKeysOffTheGateway: the lender ends a lease
// (its operator returns it); the borrower's next refresh takes the keys
// off the gateway's allow list and returns the lease on its side, without
// asking the servers (the lender powers them off).
func TestLenderSideReturnTakesKeysOffTheGateway(t *testing.T) {
	l := newLab(t, buildFerry(t))
	id, agents := l.activeLease(t)
	var ls []api.Lease
	lc := api.UnixClient(lender.AdminSocket(l.ldir))
	if err := lc.Call(t.Context(), "GET", "/admin/leases", nil, &ls); err != nil || len(ls) != 1 {
		t.Fatalf("lender has %d leases (%v), want 1", len(ls), err)
	}
	var got api.Lease
	if err := lc.Call(t.Context(), "POST", api.PathLeases+"/"+ls[0].ID+api.PathReturn, nil, &got); err != nil {
		t.Fatalf("return at the lender: %v", err)
	}
	waitFor(t, "the keys to leave the gateway's allow list", func() error {
		data, _ := os.ReadFile(filepath.Join(l.dir, "allow.jsonl"))
		for _, a := range agents {
			if strings.Contains(string(data), a.pin()) {
				return fmt.Errorf("allow list still has %s after the lender returned the lease:\n%s", a.pin(), data)
			}
		}
		return nil
	})
	out := l.must(t, "borrower", "lease", "show", "--dir", l.bdir, id)
	if m := leaseLine.FindStringSubmatch(out); m == nil || m[2] != "returned" {
		t.Errorf("lease show after the lender's return:\n%s\nwant state returned", out)
	}
	if !strings.Contains(out, "returned at the lender") {
		t.Errorf("lease show does not say the lender ended the lease:\n%s", out)
	}
	if roots, _ := filepath.Glob(filepath.Join(l.bdir, "roots", id+"-*")); len(roots) != 0 {
		t.Errorf("roots left after the lender's return: %v", roots)
	}
}
