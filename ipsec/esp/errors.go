package esp

import "errors"

// Reasons an inbound packet is dropped, each counted separately in Stats.
var (
	ErrMalformed = errors.New("malformed ESP packet")
	ErrNoSA      = errors.New("no inbound SA for SPI")
	ErrReplay    = errors.New("replayed sequence number")
	ErrTooOld    = errors.New("sequence number left of the replay window")
	ErrAuth      = errors.New("ICV check failed")
	ErrPolicy    = errors.New("inner packet outside the traffic selectors")
	// ErrSeqExhausted: the outbound counter would wrap (RFC 4303 3.3.3);
	// the SA must be rekeyed and nothing more is sent on it.
	ErrSeqExhausted = errors.New("outbound sequence number exhausted")
)
