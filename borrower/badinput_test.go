package borrower_test

import (
	"path/filepath"
	"strings"
	"testing"

	"ferry/api"
	"ferry/lender"
)

func TestRefusedRequestsLeaveNoHalfMadeLease(t *testing.T) {
	l := newLab(t, buildFerry(t))
	cases := []struct{ args, want string }{
		{"--count 5 --image b1", "count: 5 servers asked"},
		{"--count 1 --image nope", "image:"},
		{"--count 0 --image b1", "count: 0 is not between"},
		{"--count 1 --image b1 --root /nonexistent", "root:"},
	}
	for _, c := range cases {
		args := append([]string{"borrower", "lease", "request", "--dir", l.bdir}, strings.Fields(c.args)...)
		_, err := l.ferry(args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("request %s: %v, want a refusal containing %q", c.args, err, c.want)
		}
	}
	var ls []api.Lease
	if err := api.UnixClient(lender.AdminSocket(l.ldir)).Call(t.Context(), "GET", "/admin/leases", nil, &ls); err != nil || len(ls) != 0 {
		t.Fatalf("lender has %d leases after refusals (%v), want none", len(ls), err)
	}
	if roots, _ := filepath.Glob(filepath.Join(l.bdir, "roots", "B*")); len(roots) != 0 {
		t.Fatalf("roots left after refused requests: %v", roots)
	}
	out := l.must(t, "lender", "server", "list", "--dir", l.ldir)
	if strings.Contains(out, "leased") {
		t.Fatalf("servers leased after refusals:\n%s", out)
	}
	if _, err := l.ferry("lender", "boot", "--dir", l.ldir, "02:00:00:00:00:01"); err == nil || !strings.Contains(err.Error(), "mac:") {
		t.Fatalf("boot parameters for an unknown MAC: %v, want a refusal naming mac", err)
	}
}
