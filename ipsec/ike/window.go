package ike

import "time"

// inbound tracks the peer's requests on one IKE SA: with a window of one
// (RFC 7296 section 2.3) the next request must carry the next message ID,
// and a retransmission of the last one is answered from the cache.
type inbound struct {
	next     uint32   // message ID the next new request must carry
	lastResp [][]byte // datagrams of the response to request next-1
}

// verdict is what to do with an incoming request.
type verdict int

const (
	process verdict = iota
	resend          // a retransmission: send lastResp again
	drop            // outside the window
)

func (w *inbound) check(id uint32) verdict {
	switch {
	case id == w.next:
		return process
	case id+1 == w.next && w.lastResp != nil:
		return resend
	}
	return drop
}

func (w *inbound) answered(resp [][]byte) {
	w.lastResp = resp
	w.next++
}

// Backoff is the retransmission policy for our requests: the first resend
// after Base, then doubling up to Max, giving up after Tries sends.
type Backoff struct {
	Base  time.Duration
	Max   time.Duration
	Tries int
}

// DefaultBackoff gives up after about 30 s (6 sends: 0.5, 1, 2, 4, 8, 8 s
// apart), strongSwan's schedule shortened for a tunnel whose peer is one
// lender gateway.
func DefaultBackoff() Backoff {
	return Backoff{Base: 500 * time.Millisecond, Max: 8 * time.Second, Tries: 6}
}

// Delay is the wait after the n-th send (n from 1).
func (b Backoff) Delay(n int) time.Duration {
	d := b.Base
	for i := 1; i < n && d < b.Max; i++ {
		d *= 2
	}
	return min(d, b.Max)
}
