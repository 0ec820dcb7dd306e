package agent

import (
	"strings"
	"testing"

	"ferry/api"
	"ferry/ipsec/ike"
)

// The lease's tunnel timers reach the tunnel state the keeper reads; bad
// ones refuse the answer, naming the field.
func TestEnrollmentAnswerCarriesTunnelTimers(t *testing.T) {
	r := goodAnswer(t)
	r.Tunnel = &api.TunnelTimers{DPDSeconds: 5, ChildLifetimeSeconds: 1800}
	e, err := checkEnrollment(&r, "L1", "s1")
	if err != nil {
		t.Fatal(err)
	}
	if e.timers.DPDSeconds != 5 || e.timers.ChildLifetimeSeconds != 1800 {
		t.Fatalf("timers %+v; want the lease's", e.timers)
	}
	r.Tunnel = &api.TunnelTimers{ChildLifetimeSeconds: 600, RekeyMarginSeconds: 300}
	if _, err := checkEnrollment(&r, "L1", "s1"); err == nil || !strings.Contains(err.Error(), "rekey_margin_seconds") {
		t.Fatalf("margin half the CHILD_SA lifetime: %v; want a refusal naming rekey_margin_seconds", err)
	}
}

// api validates lease requests with the defaults of ipsec/ike, which it
// does not import: they must agree.
func TestAPITunnelTimersAgreeWithIKE(t *testing.T) {
	def := ike.DefaultTimers()
	ok := api.TunnelTimers{RekeyMarginSeconds: def.ChildLifetimeSeconds/2 - 1}
	bad := api.TunnelTimers{RekeyMarginSeconds: def.ChildLifetimeSeconds / 2}
	var cfg ike.Config
	if err := ok.Validate("tunnel"); err != nil || ike.Timers(ok).Apply(&cfg) != nil {
		t.Fatalf("margin just under half the default CHILD_SA lifetime: api %v, ike %v", err, ike.Timers(ok).Apply(&cfg))
	}
	if err := bad.Validate("tunnel"); err == nil || ike.Timers(bad).Apply(&cfg) == nil {
		t.Fatalf("margin half the default CHILD_SA lifetime: api %v, ike %v; want both to refuse", err, ike.Timers(bad).Apply(&cfg))
	}
	neg := api.TunnelTimers{DPDSeconds: -1}
	if d := neg.Validate("tunnel"); d == nil || !strings.Contains(d.Error(), "tunnel.dpd_seconds") {
		t.Fatalf("negative DPD: %v", d)
	}
}
