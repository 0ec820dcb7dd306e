package ike

import (
	"strings"
	"testing"
	"time"
)

func TestTimersApplyDefaultsAndRefusesBadValues(t *testing.T) {
	var cfg Config
	if err := (Timers{}).Apply(&cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.DPD != 10*time.Second || cfg.IKELifetime != 4*time.Hour || cfg.ChildLifetime != time.Hour || cfg.RekeyMargin != 6*time.Minute {
		t.Fatalf("defaults: DPD %v IKE %v CHILD %v margin %v", cfg.DPD, cfg.IKELifetime, cfg.ChildLifetime, cfg.RekeyMargin)
	}
	for _, c := range []struct {
		t    Timers
		want string
	}{
		{Timers{DPDSeconds: -1}, "dpd_seconds -1"},
		{Timers{ChildLifetimeSeconds: 600, RekeyMarginSeconds: 300}, "rekey_margin_seconds 5m0s"},
		{Timers{IKELifetimeSeconds: maxTimer + 1}, "ike_lifetime_seconds"},
	} {
		if err := c.t.Apply(&cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v; want an error naming %q", c.t, err, c.want)
		}
	}
}

func TestRekeyFallsBetweenTwoMarginsAndOneBeforeTheEnd(t *testing.T) {
	d := &Daemon{cfg: Config{RekeyMargin: 6 * time.Minute}}
	for range 1000 {
		if r := d.rekeyAfter(time.Hour); r < 48*time.Minute || r >= 54*time.Minute {
			t.Fatalf("rekey after %v of a 1 h lifetime with a 6 min margin; want 48-54 min", r)
		}
	}
}
