package ike

import (
	"fmt"
	"time"
)

// tick runs retransmissions, liveness checks, keepalives and expiry.
func (d *Daemon) tick(now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.cookies.maybeRotate(now)
	for _, sa := range d.sas {
		d.tickSA(sa, now)
	}
}

// tickSA is one SA's timers: its pending request's retransmission or
// give-up, the grace of replaced SAs, expiry waiting for the window,
// the ends of the transient states (deleting, refused, half-open), the
// IKE SA rekey, liveness checks and NAT-T keepalives.
func (d *Daemon) tickSA(sa *ikeSA, now time.Time) {
	if p := sa.pending; p != nil && now.After(p.due) {
		if p.sends >= d.cfg.Backoff.Tries || (p.hinted && p.hintLeft == 0) {
			sa.pending = nil
			d.log.Info("ike: peer does not answer, giving up", "peer", peerName(sa), "exchange", p.exch, "sends", p.sends)
			if p.onFail != nil {
				p.onFail()
			}
			reason := fmt.Sprintf("no answer to %s after %d sends", p.exch, p.sends)
			if p.hinted {
				reason = sa.hint + ", and no answer to " + p.exch.String()
			}
			d.removeSA(sa, reason)
			return
		}
		p.sends++
		p.due = now.Add(d.cfg.Backoff.Delay(p.sends))
		if p.hinted {
			p.hintLeft--
			p.due = now.Add(hintDelay)
		}
		d.send(sa, p.dgrams)
	}
	d.reap(sa, now)
	if sa.st == stEstablished && sa.pending == nil {
		d.childDue(sa)
	}
	switch {
	case sa.moved && sa.st == stDeleting && now.Sub(sa.movedAt) > d.cfg.RekeyGrace:
		d.removeSA(sa, fmt.Sprintf("rekeyed, and not deleted within %v", d.cfg.RekeyGrace))
		return
	case sa.st == stRefused && now.Sub(sa.created) > d.cfg.RefusalHold:
		d.removeSA(sa, "refusal held long enough")
		return
	case sa.st == stHalfOpen && now.Sub(sa.created) > 30*time.Second:
		d.log.Info("ike: half-open SA expired", "from", sa.remote)
		d.removeSA(sa, "half-open too long")
		return
	case sa.st == stEstablished && d.ikeRekeyDue(sa, now):
		if ok, _ := d.rekeyIKE(sa); ok {
			sa.rekeyAt = now.Add(d.cfg.IKELifetime / 10) // retry if this one fails
		}
	case sa.st == stEstablished && sa.pending == nil && d.livenessDue(sa, now):
		d.checkLiveness(sa)
	}
	if sa.st == stEstablished && sa.natT && sa.behindNAT && now.Sub(sa.lastSend) > d.cfg.Keepalive {
		sa.lastSend = now
		d.natc.WriteToUDPAddrPort([]byte{0xff}, sa.remote)
	}
}

// ikeRekeyDue reports whether sa's jittered lifetime ran out: both ends
// rekey, each at a random point of the margin before IKELifetime.
func (d *Daemon) ikeRekeyDue(sa *ikeSA, now time.Time) bool {
	if d.cfg.IKELifetime <= 0 {
		return false
	}
	if sa.rekeyAt.IsZero() {
		sa.rekeyAt = sa.created.Add(d.rekeyAfter(d.cfg.IKELifetime))
	}
	return now.After(sa.rekeyAt)
}
