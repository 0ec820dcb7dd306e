package ike

import (
	"fmt"
	mrand "math/rand/v2"
	"time"
)

// Timers are a tunnel's liveness and rekey settings, as configuration
// files carry them (gateway.json, the initiator's vpn.json). Zero fields
// take DefaultTimers' values, which both ends share, so that a gateway and
// its servers agree unless someone changes one of them.
type Timers struct {
	// DPDSeconds: a liveness check (empty INFORMATIONAL) after this long
	// without an IKE message or an ESP packet from the peer.
	DPDSeconds int `json:"dpd_seconds,omitempty"`
	// IKELifetimeSeconds and ChildLifetimeSeconds: the IKE SA is rekeyed,
	// a CHILD_SA rekeyed and then deleted, within this long.
	IKELifetimeSeconds   int `json:"ike_lifetime_seconds,omitempty"`
	ChildLifetimeSeconds int `json:"child_lifetime_seconds,omitempty"`
	// RekeyMarginSeconds: each end rekeys at a random point between two
	// margins and one margin before the lifetime ends (the jitter keeps
	// both ends from rekeying at once).
	RekeyMarginSeconds int `json:"rekey_margin_seconds,omitempty"`
}

// DefaultTimers: DPD 10 s, IKE SA 4 h, CHILD_SA 1 h, margin 6 min (CHILD_SA
// rekeys at 48-54 min, IKE SA at 3 h 48-3 h 54).
func DefaultTimers() Timers {
	return Timers{DPDSeconds: 10, IKELifetimeSeconds: 4 * 3600, ChildLifetimeSeconds: 3600, RekeyMarginSeconds: 360}
}

// maxTimer bounds every setting: a year.
const maxTimer = 366 * 24 * 3600

// Apply checks t, fills zero fields from DefaultTimers and sets cfg's
// DPD, lifetimes and margin.
func (t Timers) Apply(cfg *Config) error {
	def := DefaultTimers()
	pick := func(name string, v, d int) (time.Duration, error) {
		switch {
		case v < 0 || v > maxTimer:
			return 0, fmt.Errorf("%s %d: want 1 to %d seconds (0: default %d)", name, v, maxTimer, d)
		case v == 0:
			v = d
		}
		return time.Duration(v) * time.Second, nil
	}
	var err error
	if cfg.DPD, err = pick("dpd_seconds", t.DPDSeconds, def.DPDSeconds); err != nil {
		return err
	}
	if cfg.IKELifetime, err = pick("ike_lifetime_seconds", t.IKELifetimeSeconds, def.IKELifetimeSeconds); err != nil {
		return err
	}
	if cfg.ChildLifetime, err = pick("child_lifetime_seconds", t.ChildLifetimeSeconds, def.ChildLifetimeSeconds); err != nil {
		return err
	}
	if cfg.RekeyMargin, err = pick("rekey_margin_seconds", t.RekeyMarginSeconds, def.RekeyMarginSeconds); err != nil {
		return err
	}
	for _, l := range []struct {
		name string
		d    time.Duration
	}{{"ike_lifetime_seconds", cfg.IKELifetime}, {"child_lifetime_seconds", cfg.ChildLifetime}} {
		if 2*cfg.RekeyMargin >= l.d {
			return fmt.Errorf("rekey_margin_seconds %v: twice it must be under %s %v", cfg.RekeyMargin, l.name, l.d)
		}
	}
	return nil
}

// rekeyAfter is when to rekey something that lives for life: a random
// point between two margins and one margin before its end. Without a
// margin configured it is 10 % of life (80-90 %).
func (d *Daemon) rekeyAfter(life time.Duration) time.Duration {
	m := d.cfg.RekeyMargin
	if m <= 0 || 2*m >= life {
		m = life / 10
	}
	return life - 2*m + jitter(m, 0, 100)
}

// jitter is a random duration between lo and hi percent of d.
func jitter(d time.Duration, lo, hi int64) time.Duration {
	span := int64(d) * (hi - lo) / 100
	if span <= 0 {
		return time.Duration(int64(d) * lo / 100)
	}
	return time.Duration(int64(d)*lo/100 + mrand.Int64N(span))
}
