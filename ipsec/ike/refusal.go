package ike

import (
	"net/netip"
	"time"

	"ferry/ipsec/ikev2"
)

// refusalLog remembers which refusals were logged, so that a peer
// retransmitting the same refused request is logged once per SPI and
// reason, not once per datagram. It holds at most max entries, each for
// hold.
type refusalLog struct {
	seen map[refusalKey]time.Time
}

type refusalKey struct {
	from   netip.Addr
	spi    uint64
	reason string
}

// first reports whether k was not logged within hold, and notes it.
func (l *refusalLog) first(k refusalKey, now time.Time, hold time.Duration, max int) bool {
	if t, ok := l.seen[k]; ok && now.Sub(t) < hold {
		return false
	}
	if l.seen == nil {
		l.seen = map[refusalKey]time.Time{}
	}
	if len(l.seen) >= max {
		for key, t := range l.seen {
			if now.Sub(t) >= hold {
				delete(l.seen, key)
			}
		}
		if len(l.seen) >= max {
			clear(l.seen) // flooded: forget rather than grow
		}
	}
	l.seen[k] = now
	return true
}

// refusal is an IKE_AUTH refusal: the notify to answer and why.
type refusal struct {
	kind   ikev2.NotifyType
	reason error
}
