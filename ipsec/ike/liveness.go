package ike

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"ferry/ipsec/ikev2"
)

// Fast recovery (RFC 7296 sections 2.4 and 2.21.4). A restarted gateway
// knows none of the SAs its servers still hold; it answers their requests
// with an unprotected INVALID_IKE_SPI, and a server that hears it checks
// at once whether its SA still works instead of waiting out a back-off
// of half a minute. The notify is unauthenticated, so it only shortens
// the check of the request it answers: an authenticated answer from the
// peer keeps the SA, as if the notify never came.

const (
	// hintSends and hintDelay are the liveness check after an
	// INVALID_IKE_SPI: the pending request is sent again at once and
	// hintSends times in all, hintDelay apart, then the SA is given up.
	hintSends = 3
	hintDelay = 250 * time.Millisecond
	// invalidSPIRate and invalidSPIBurst bound the INVALID_IKE_SPI
	// answers a daemon sends per second: each costs a datagram towards
	// an address nobody authenticated. One address gets at most
	// sourceRate of them (burst sourceBurst): that bounds what a forged
	// source reflects to its victim, and one sender cannot use up the
	// answers the servers of a restarted gateway need. maxSources bounds
	// the addresses remembered.
	invalidSPIRate, invalidSPIBurst = 100, 100
	sourceRate, sourceBurst         = 2, 4
	maxSources                      = 4096
	// probeEvery is how often an initiator reads its CHILD_SAs' counters;
	// unanswered is how long it tolerates sending ESP and receiving none
	// before checking liveness without waiting for the DPD interval.
	probeEvery = 500 * time.Millisecond
	unanswered = 1500 * time.Millisecond
)

// tokenBucket is a small rate limiter (the daemon's lock held).
type tokenBucket struct {
	tokens float64
	last   time.Time
}

func (b *tokenBucket) take(now time.Time, rate, burst float64) bool {
	if b.last.IsZero() {
		b.tokens = burst
	} else {
		b.tokens = min(burst, b.tokens+now.Sub(b.last).Seconds()*rate)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// invalidSPILimit is the global and the per-source limit of
// INVALID_IKE_SPI answers.
type invalidSPILimit struct {
	all     tokenBucket
	sources map[netip.Addr]*tokenBucket
}

func (l *invalidSPILimit) take(from netip.Addr, now time.Time) bool {
	if l.sources == nil || len(l.sources) >= maxSources {
		// Forget them all rather than grow: a flood from many
		// addresses is still held by the global limit.
		l.sources = map[netip.Addr]*tokenBucket{}
	}
	b := l.sources[from]
	if b == nil {
		b = &tokenBucket{}
		l.sources[from] = b
	}
	if !b.take(now, sourceRate, sourceBurst) {
		return false
	}
	return l.all.take(now, invalidSPIRate, invalidSPIBurst)
}

// answerUnknownSPI tells the sender of a request for an IKE SA we do not
// hold that we do not hold it: an unprotected INVALID_IKE_SPI with its
// SPIs and message ID, to where it came from. Responses are never
// answered, and the answers are rate-limited.
func (d *Daemon) answerUnknownSPI(h ikev2.Header, from netip.AddrPort, nat bool) {
	if h.IsResponse() || !d.unknownSPI.take(from.Addr(), time.Now()) {
		return
	}
	flags := ikev2.FlagResponse
	if !h.IsInitiator() {
		flags |= ikev2.FlagInitiator // we would be the original initiator
	}
	m := ikev2.Message{
		Header:   ikev2.Header{SPIi: h.SPIi, SPIr: h.SPIr, Exchange: h.Exchange, MessageID: h.MessageID, Flags: flags},
		Payloads: []ikev2.Payload{&ikev2.Notify{Kind: ikev2.INVALID_IKE_SPI}},
	}
	if b, err := m.Encode(); err == nil {
		d.sendTo(b, from, nat)
	}
}

// unprotected handles a response on a known SA that is not encrypted:
// only an INVALID_IKE_SPI answering our pending request means anything,
// and only as a hint.
func (d *Daemon) unprotected(sa *ikeSA, b []byte, h ikev2.Header) {
	p := sa.pending
	if p == nil || h.MessageID != p.id || p.hinted || (sa.st != stEstablished && sa.st != stAuthSent) {
		return
	}
	m, err := ikev2.DecodeMessage(b)
	if err != nil || findNotify(m.Payloads, ikev2.INVALID_IKE_SPI) == nil {
		return
	}
	p.hinted, p.hintLeft, p.due = true, hintSends, time.Now()
	sa.hint = "peer does not know the IKE SA (INVALID_IKE_SPI)"
	d.log.Info("ike: peer says it does not know the IKE SA (unauthenticated); checking liveness now",
		"peer", peerName(sa), "spi", fmt.Sprintf("%016x", sa.localSPI()), "exchange", p.exch)
}

// probe reads the counters of sa's CHILD_SAs and notes whether ESP
// arrived or left since the last probe.
func (d *Daemon) probe(sa *ikeSA, now time.Time) (in, out bool) {
	sa.probedAt = now
	for _, c := range sa.children {
		if c.dead {
			continue
		}
		ctr, err := d.cfg.DataPlane.Counters(context.Background(), c.cfg.InSPI, c.cfg.OutSPI)
		if err != nil {
			continue
		}
		in = in || ctr.InPackets > c.seenIn
		out = out || ctr.OutPackets > c.seenOut
		c.seenIn, c.seenOut = ctr.InPackets, ctr.OutPackets
	}
	if in {
		sa.lastESPIn = now
		sa.quietSince = time.Time{}
	} else if out && sa.quietSince.IsZero() {
		sa.quietSince = now
	}
	return in, out
}

// livenessDue reports whether sa needs a liveness check now: nothing from
// the peer, IKE or ESP, for the DPD interval, or (initiator) our ESP
// unanswered for a while, which is how a busy tunnel notices a restarted
// gateway within seconds. The caller checked that the window is free.
func (d *Daemon) livenessDue(sa *ikeSA, now time.Time) bool {
	if sa.origin && now.Sub(sa.probedAt) >= probeEvery {
		d.probe(sa, now)
	}
	if sa.origin && !sa.quietSince.IsZero() && now.Sub(sa.quietSince) >= unanswered && now.Sub(sa.lastRecv) >= unanswered &&
		(sa.quietChecked.Before(sa.quietSince) || now.Sub(sa.quietChecked) > d.cfg.DPD) {
		// One check per silence, then one per DPD interval while the
		// peer answers IKE but not ESP (its side of the tunnel is
		// broken, or only we send).
		sa.quietChecked = now
		return true
	}
	last := sa.lastRecv
	if sa.lastESPIn.After(last) {
		last = sa.lastESPIn
	}
	if now.Sub(last) <= d.cfg.DPD {
		return false
	}
	if !sa.origin && now.Sub(sa.probedAt) >= probeEvery {
		// The responder reads counters only when DPD would be due: ESP
		// from the peer shows it alive as well as an IKE message does.
		if in, _ := d.probe(sa, now); in {
			return false
		}
	}
	return true
}

// dataPath says whether ESP moves on sa (SAStatus.DataPath); the caller
// probed the counters just before.
func (d *Daemon) dataPath(sa *ikeSA, now time.Time) string {
	live := 0
	for _, c := range sa.children {
		if !c.dead && !c.replaced {
			live++
		}
	}
	switch {
	case sa.st != stEstablished || live == 0:
		return "none"
	case !sa.quietSince.IsZero() && now.Sub(sa.quietSince) >= unanswered:
		return "stalled"
	case !sa.lastESPIn.IsZero() && now.Sub(sa.lastESPIn) <= d.cfg.DPD:
		return "alive"
	}
	return "idle"
}
