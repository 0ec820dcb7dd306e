package borrower_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ferry/api"
	"ferry/lender"
)

// `ferry borrower lease extend` lengthens the lease at the lender and
// moves the keys' end on the gateway's allow list with it; asked again it
// extends again from the new end.
func TestLeaseExtendMovesTheEndAtTheLenderAndTheGateway(t *testing.T) {
	l := newLab(t, buildFerry(t))
	id, agents := l.activeLease(t)
	var before []api.Lease
	if err := api.UnixClient(lender.AdminSocket(l.ldir)).Call(t.Context(), "GET", "/admin/leases", nil, &before); err != nil || len(before) != 1 {
		t.Fatalf("lender leases: %v", err)
	}
	want := before[0].Expires.Add(48 * time.Hour).Truncate(time.Second)
	out := l.must(t, "borrower", "lease", "extend", "--dir", l.bdir, id, "--duration", "48h")
	if !strings.Contains(out, "expires "+want.Format(time.RFC3339)) {
		t.Fatalf("lease extend printed %q, want it to end %s", out, want.Format(time.RFC3339))
	}
	var after []api.Lease
	if err := api.UnixClient(lender.AdminSocket(l.ldir)).Call(t.Context(), "GET", "/admin/leases", nil, &after); err != nil || !after[0].Expires.Equal(want) {
		t.Fatalf("the lender's lease ends %v (%v), want %s", after[0].Expires, err, want)
	}
	data, _ := os.ReadFile(filepath.Join(l.dir, "allow.jsonl"))
	for _, a := range agents {
		found := false
		for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			var e struct {
				Pin     string    `json:"pin"`
				Expires time.Time `json:"expires"`
			}
			if json.Unmarshal([]byte(line), &e) == nil && e.Pin == a.pin() {
				found = e.Expires.Equal(want)
			}
		}
		if !found {
			t.Errorf("allow list entry of %s does not end at %s:\n%s", a.pin(), want, data)
		}
	}
	if _, err := l.ferry("borrower", "lease", "extend", "--dir", l.bdir, id, "--duration", fmt.Sprint(100*24*time.Hour)); err == nil {
		t.Fatal("a lease extended past the longest lending")
	}
}
