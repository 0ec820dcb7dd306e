package esp

import (
	"errors"
	"sync/atomic"
)

// Stats are the data plane's counters since it started.
type Stats struct {
	TxPackets, TxBytes uint64 // inner bytes sealed and sent
	RxPackets, RxBytes uint64 // inner bytes accepted and delivered
	TxNoSA             uint64 // inner packets with no SA for their destination
	TxErrors           uint64 // send failures and exhausted counters
	DropMalformed      uint64
	DropNoSA           uint64 // unknown SPI
	DropReplay         uint64 // duplicate inside the window
	DropTooOld         uint64 // left of the window
	DropAuth           uint64 // ICV mismatch
	DropPolicy         uint64 // inner addresses outside the selectors
	DropOther          uint64 // TUN write errors, non-IPv4 payloads
	EventsLost         uint64 // expire events dropped: nobody read Expire()
}

type counters struct {
	txPackets, txBytes, rxPackets, rxBytes, txNoSA, txErrors atomic.Uint64
	malformed, noSA, replay, tooOld, auth, policy, other     atomic.Uint64
	eventsLost                                               atomic.Uint64
}

func (c *counters) drop(err error) {
	switch {
	case errors.Is(err, ErrMalformed):
		c.malformed.Add(1)
	case errors.Is(err, ErrNoSA):
		c.noSA.Add(1)
	case errors.Is(err, ErrReplay):
		c.replay.Add(1)
	case errors.Is(err, ErrTooOld):
		c.tooOld.Add(1)
	case errors.Is(err, ErrAuth):
		c.auth.Add(1)
	case errors.Is(err, ErrPolicy):
		c.policy.Add(1)
	default:
		c.other.Add(1)
	}
}

func (c *counters) snapshot() Stats {
	return Stats{
		TxPackets: c.txPackets.Load(), TxBytes: c.txBytes.Load(),
		RxPackets: c.rxPackets.Load(), RxBytes: c.rxBytes.Load(),
		TxNoSA: c.txNoSA.Load(), TxErrors: c.txErrors.Load(),
		DropMalformed: c.malformed.Load(), DropNoSA: c.noSA.Load(),
		DropReplay: c.replay.Load(), DropTooOld: c.tooOld.Load(),
		DropAuth: c.auth.Load(), DropPolicy: c.policy.Load(),
		DropOther: c.other.Load(), EventsLost: c.eventsLost.Load(),
	}
}
