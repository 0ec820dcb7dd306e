package borrower

import (
	"slices"
	"testing"
)

// A reload names the settings that wait for a restart, and only those:
// not the key pairs it renews, not Ready (no setting), and nothing at
// all for the same file read again.
func TestRestartOnlyNamesChangedSettings(t *testing.T) {
	old := Config{Dir: "/d", LeaseHours: 24, M2MCert: "a.pem", Ready: func() {}}
	same := old
	same.Ready = nil
	if got := restartOnly(old, same); len(got) != 0 {
		t.Fatalf("same file: %q, want nothing", got)
	}
	next := same
	next.M2MCert, next.LeaseHours, next.TunnelPool = "b.pem", 48, "10.8.2.0/24"
	if got := restartOnly(old, next); !slices.Equal(got, []string{"tunnel_pool", "lease_hours"}) && !slices.Equal(got, []string{"lease_hours", "tunnel_pool"}) {
		t.Fatalf("got %q, want lease_hours and tunnel_pool", got)
	}
}
